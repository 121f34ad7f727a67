"""Certificate revocation lists: pure construction from the CA's key and the revoked records.

The CA publishes a full CRL (no deltas) with a short ``nextUpdate``. Certificates that have
expired are left out: an expired certificate is refused anyway and short-lived certificates keep
the list small. The JDK refetches a CRL at most every 30 s (see docs/floodlight.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floodlight_trust.errors import ParseError
from floodlight_trust.pki.keys import PrivateKey, signing_hash
from floodlight_trust.pki.records import CertificateRecord


def crl_number(at: datetime) -> int:
    """A CRL number that increases with the signing time (milliseconds since the epoch)."""
    return int(at.timestamp() * 1000)


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[CertificateRecord],
    *,
    at: datetime,
    next_update: timedelta,
) -> x509.CertificateRevocationList:
    """A full CRL signed at ``at`` listing every revoked, unexpired record."""
    if next_update <= timedelta(0):
        raise ValueError("next_update must be positive")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(at.astimezone(UTC))
        .next_update((at + next_update).astimezone(UTC))
        .add_extension(x509.CRLNumber(crl_number(at)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for record in revoked:
        if record.revoked_at is None or record.not_after < at or record.revoked_at > at:
            continue
        entry = x509.RevokedCertificateBuilder().serial_number(record.serial).revocation_date(record.revoked_at)
        reason = record.revocation_reason or "unspecified"
        # RFC 5280 5.3.1: the reason code "unspecified" should be absent rather than present.
        if reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
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
