"""Certificates and CRLs from untrusted bytes, parsed eagerly into the project's errors.

``cryptography`` parses a certificate's fields lazily: ``load_pem_x509_certificate`` succeeds on a
certificate whose issuer is malformed and the ValueError comes later, from ``cert.issuer`` deep in a
verifier (a fuzzed collateral chain did exactly that). Here every field a verifier reads is touched
once, where the bytes arrive, and any failure is a located :class:`ParseError`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from floodlight_trust.errors import ParseError

# What cryptography raises for malformed input besides ValueError: a version it does not know
# (InvalidVersion) and an extension listed twice (DuplicateExtension) are plain Exceptions, and
# escaped the verifier untyped until they were caught here too.
_MALFORMED = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension)


def touch_certificate(
    cert: x509.Certificate, *, names: bool = True, extensions: bool = True, fields: bool = True
) -> x509.Certificate:
    """Parse every field a verifier reads; ValueError (only) if one is malformed.

    A verifier that never reads a certificate's names as ``x509.Name`` (DCAP compares them as DER
    bytes and renders them for messages with :func:`subject_text`) passes ``names=False``, and one
    that never reads its extensions ``extensions=False``: building ~30 ``x509.Name`` attributes per
    certificate was most of the cost of loading one. One that reads the serial number, validity
    and signature from the DER itself (:func:`floodlight_trust.evidence.x509_der.certificate_fields`)
    passes ``fields=False``: only the public key is parsed then.
    """
    try:
        return _touch_certificate(cert, names=names, extensions=extensions, fields=fields)
    except ValueError:
        raise
    except _MALFORMED as e:
        raise ValueError(str(e)) from None


def subject_text(cert: x509.Certificate) -> str:
    """The certificate's subject as RFC 4514 text for a message, even when the name is malformed."""
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<a certificate with a malformed subject name>"


def _touch_certificate(
    cert: x509.Certificate, *, names: bool = True, extensions: bool = True, fields: bool = True
) -> x509.Certificate:
    if names:
        cert.subject  # noqa: B018  (each access parses; a malformed field raises here)
        cert.issuer  # noqa: B018
    if fields:
        cert.serial_number  # noqa: B018
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
    if extensions:
        list(cert.extensions)
    cert.public_key()
    if fields:
        cert.signature_hash_algorithm  # noqa: B018
    return cert


def certificates_from_pem(pem: bytes, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, fully parsed; ParseError naming ``what`` otherwise."""
    try:
        return [_touch_certificate(c) for c in x509.load_pem_x509_certificates(pem)]
    except _MALFORMED as e:
        raise ParseError(f"{what}: a certificate is not valid: {str(e)[:160]}") from None


def certificate_from_der(der: bytes, what: str) -> x509.Certificate:
    try:
        return _touch_certificate(x509.load_der_x509_certificate(der))
    except _MALFORMED as e:
        raise ParseError(f"{what} is not a valid certificate: {str(e)[:160]}") from None


def crl_from_der(der: bytes, what: str, *, issuer: bool = True) -> x509.CertificateRevocationList:
    """A CRL, fully parsed (its issuer name too unless ``issuer=False``: a caller that compares the
    issuer as DER bytes never reads it); ParseError naming ``what`` otherwise."""
    try:
        crl = x509.load_der_x509_crl(der)
        if issuer:
            crl.issuer  # noqa: B018
        crl.last_update_utc  # noqa: B018
        crl.next_update_utc  # noqa: B018
        list(crl.extensions)
        [r.serial_number for r in crl]
        crl.signature_hash_algorithm  # noqa: B018
    except _MALFORMED as e:
        raise ParseError(f"{what} is not a valid DER CRL: {str(e)[:160]}") from None
    return crl
