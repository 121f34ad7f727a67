"""Certificate revocation lists: pure construction from the CA's key and the revoked records.

The CA publishes a full CRL (no deltas) with a short ``nextUpdate``. Certificates that have
expired are left out: an expired certificate is refused anyway and short-lived certificates keep
the list small. The JDK refetches a CRL at most every 30 s (see docs/floodlight.md).

Replicas (several ``vm serve`` on one database) must publish the same CRL for the same state, so
nothing in a CRL comes from the process that signs it: ``thisUpdate`` is :func:`publication_time`
(the start of the current refresh period, or the latest revocation if later, in whole seconds),
the CRL number is :func:`crl_number` of that time and of how many revocations the state holds,
the entries are the revoked records unexpired at ``thisUpdate``, and ECDSA signatures are
deterministic (RFC 6979; RSA PKCS#1 v1.5 is by nature). Two replicas reading the same records in
the same refresh period therefore serve the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.errors import ParseError
from floodlight_trust.pki.keys import PrivateKey, signing_hash
from floodlight_trust.pki.records import CertificateRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def whole_second(at: datetime) -> datetime:
    """``at`` in UTC without its fraction of a second (X.509 times have whole seconds)."""
    return at.astimezone(UTC).replace(microsecond=0)


def publication_time(now: datetime, latest_revocation: datetime | None, refresh: timedelta) -> datetime:
    """The ``thisUpdate`` of the CRL to serve at ``now``: the start of the refresh period holding
    ``now`` (periods of ``refresh``, counted from the epoch), or the second of the latest revocation
    if that is later. A pure function of shared state and the period, never of which process asks."""
    step = max(1, int(refresh.total_seconds()))
    seconds = int((now.astimezone(UTC) - _EPOCH).total_seconds())
    start = _EPOCH + timedelta(seconds=seconds - seconds % step)
    if latest_revocation is not None:
        start = max(start, whole_second(latest_revocation))
    return start


def crl_number(this_update: datetime, revocations: int) -> int:
    """A CRL number that increases with every CRL that differs: ``thisUpdate`` in seconds since the
    epoch, then the number of revocations on record (which grows with each revocation, also one
    dated in the same second or, from a replica whose clock lags, earlier)."""
    if not 0 <= revocations < 1 << 32:
        raise ValueError("revocation count out of range")
    return (int((whole_second(this_update) - _EPOCH).total_seconds()) << 32) | revocations


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[CertificateRecord],
    *,
    at: datetime,
    next_update: timedelta,
) -> x509.CertificateRevocationList:
    """A full CRL with ``thisUpdate`` = ``at`` (whole seconds) listing every record of ``revoked``
    revoked by then and unexpired then; the CRL number counts every record given, so pass all the
    revoked records on record (expired ones too). Same arguments, same bytes."""
    if next_update <= timedelta(0):
        raise ValueError("next_update must be positive")
    at = whole_second(at)
    records = list(revoked)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(at)
        .next_update(at + next_update)
        .add_extension(x509.CRLNumber(crl_number(at, len(records))), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for record in sorted(records, key=lambda r: r.serial):  # one order, whatever order the store returns
        if record.revoked_at is None or record.not_after < at or whole_second(record.revoked_at) > at:
            continue
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(record.serial)
            .revocation_date(whole_second(record.revoked_at))
        )
        reason = record.revocation_reason or "unspecified"
        # RFC 5280 5.3.1: the reason code "unspecified" should be absent rather than present.
        if reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return builder.sign(issuer_key, signing_hash(issuer_key), ecdsa_deterministic=True)
    return builder.sign(issuer_key, signing_hash(issuer_key))


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from DER or PEM bytes; anything else is a ParseError."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as e:
        raise ParseError(f"not a CRL: {e}") from None
