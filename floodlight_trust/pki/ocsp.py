"""OCSP responses (RFC 6960) signed by the CA itself, built with cryptography's OCSP builder.

Pure: a request's DER bytes, the issuer, a record lookup and the time in; response DER out. The
Verification Manager exposes it over HTTP at the AIA URL it embeds in certificates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import OCSPExtensionOID

from floodlight_trust.pki.crl import publication_time
from floodlight_trust.pki.keys import PrivateKey, signing_hash
from floodlight_trust.pki.records import CertificateRecord

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda b: hashlib.sha1(b, usedforsecurity=False).digest(),
    "sha256": lambda b: hashlib.sha256(b).digest(),
    "sha384": lambda b: hashlib.sha384(b).digest(),
    "sha512": lambda b: hashlib.sha512(b).digest(),
}


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents, which issuerKeyHash is computed over."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError("unsupported issuer key")


def build_ocsp_response(
    request_der: bytes,
    *,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    lookup: Callable[[int], CertificateRecord | None],
    at: datetime,
    validity: timedelta = timedelta(minutes=1),
    refresh: timedelta | None = None,
) -> bytes:
    """Answer one OCSP request: good, revoked (with time and reason) or unknown, as of ``at``.

    A malformed request gets ``malformedRequest``; a request about another issuer gets
    ``unauthorized`` (this responder only speaks for its own CA). With ``refresh``, ``thisUpdate`` is
    the start of the refresh period holding ``at`` (or the certificate's revocation, if later:
    :func:`~floodlight_trust.pki.crl.publication_time`), so replicas answer alike; without it, ``at``.
    """
    malformed = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm.name
    except (ValueError, UnsupportedAlgorithm):  # not DER, or a CertID hash OID nobody knows
        return malformed.public_bytes(serialization.Encoding.DER)
    if request.serial_number <= 0:  # RFC 5280 4.1.2.2: serials are positive
        return malformed.public_bytes(serialization.Encoding.DER)
    digest = _HASHES.get(algorithm)
    if (
        digest is None
        or request.issuer_name_hash != digest(issuer.subject.public_bytes())
        or request.issuer_key_hash != digest(_public_key_bits(issuer))
    ):
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
            serialization.Encoding.DER
        )
    record = lookup(request.serial_number)
    revocation_time: datetime | None = None
    revocation_reason: x509.ReasonFlags | None = None
    if record is None:
        status = ocsp.OCSPCertStatus.UNKNOWN
    # With ``refresh`` (a replica answering from shared state) a committed revocation counts at once,
    # even when it is dated by a replica whose clock runs ahead of this one's.
    elif record.revoked_at is not None and (refresh is not None or record.revoked_at <= at):
        status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = record.revoked_at
        if record.revocation_reason and record.revocation_reason != "unspecified":
            revocation_reason = x509.ReasonFlags(record.revocation_reason)
    else:
        status = ocsp.OCSPCertStatus.GOOD
    this_update = at if refresh is None else publication_time(at, revocation_time, refresh)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=this_update + validity,
            revocation_time=revocation_time,
            revocation_reason=revocation_reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    )
    try:
        nonce = request.extensions.get_extension_for_oid(OCSPExtensionOID.NONCE)
        builder = builder.add_extension(nonce.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    response = builder.sign(issuer_key, signing_hash(issuer_key))
    return response.public_bytes(serialization.Encoding.DER)
