"""Endorsement-key certificates: read them as TPMs store them and chain them to manufacturer roots.

The operator configures a directory of manufacturer CA certificates (PEM, PEM bundles or DER, as
Keylime's ``tpm_cert_store``); the self-signed ones are the trust anchors, the others may serve as
intermediates. A certificate read from TPM NV often carries the NV index's padding after the DER
(0xFF or 0x00 bytes, as STMicroelectronics EKs do); it is trimmed and the trim reported, anything
else after the DER is refused. Pure: bytes, roots and the verification time in.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from floodlight_trust.errors import Location, ParseError
from floodlight_trust.evidence.tpm.keys import public_key_of
from floodlight_trust.evidence.tpm.structures import TpmPublic

TCG_KP_EK_CERTIFICATE = ObjectIdentifier("2.23.133.8.1")
MAX_CHAIN = 8


def _der_length(data: bytes) -> int | None:
    """The length of the DER element at the start of ``data`` (header included), if well formed."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return None
    return 2 + n + int.from_bytes(data[2 : 2 + n], "big")


@dataclass(frozen=True)
class EkCertificate:
    certificate: x509.Certificate
    padding_trimmed: int  # NV padding bytes removed after the DER


def read_certificate(data: bytes, what: str = "EK certificate") -> EkCertificate:
    """One certificate from PEM or DER, trimming NV padding after the DER (reported)."""
    data = bytes(data)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return EkCertificate(x509.load_pem_x509_certificate(data), 0)
        length = _der_length(data)
        if length is None or length > len(data):
            raise ParseError(
                f"{what}: not a DER certificate (no complete SEQUENCE at the start)", location=Location(offset=0)
            )
        tail = data[length:]
        if tail and set(tail) - {0x00} and set(tail) - {0xFF}:
            raise ParseError(f"{what}: {len(tail)} bytes after the certificate that are not NV padding",
                             location=Location(offset=length))  # fmt: skip
        return EkCertificate(x509.load_der_x509_certificate(data[:length]), len(tail))
    except ValueError as e:
        raise ParseError(f"{what}: not an X.509 certificate ({e})", location=Location(offset=0)) from None


def read_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one DER certificate."""
    if b"-----BEGIN" in data:
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError as e:
            raise ParseError(f"{what}: {e}") from None
    return [read_certificate(data, what).certificate]


@dataclass(frozen=True)
class EkVerification:
    ok: bool
    chain: tuple[x509.Certificate, ...]  # the EK certificate first, the anchor last (when ok)
    reasons: tuple[str, ...]  # why not, every one
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain": [c.subject.rfc4514_string() or "(empty subject)" for c in self.chain],
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def verify_ek_certificate(
    ek_cert: EkCertificate | x509.Certificate,
    manufacturer_cas: Sequence[x509.Certificate],
    *,
    at: datetime,
    ek_public: TpmPublic | None = None,
) -> EkVerification:
    """Chain ``ek_cert`` to a self-signed certificate among ``manufacturer_cas``, valid at ``at``.

    Every certificate of the chain must be valid at ``at``; every issuer must be a CA; with
    ``ek_public`` (the EK's TPMT_PUBLIC as the TPM reports it), the certificate must be for that key.
    All reasons are collected. A missing TCG EK certificate EKU is a note (many EKs omit it).
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if isinstance(ek_cert, EkCertificate):
        cert, trimmed = ek_cert.certificate, ek_cert.padding_trimmed
    else:
        cert, trimmed = ek_cert, 0
    reasons: list[str] = []
    notes: list[str] = []
    if trimmed:
        notes.append(f"{trimmed} bytes of NV padding after the certificate were ignored")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if TCG_KP_EK_CERTIFICATE not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            notes.append("the certificate has an extended key usage without tcg-kp-EKCertificate")
    except x509.ExtensionNotFound:
        notes.append("the certificate has no extended key usage (tcg-kp-EKCertificate)")
    if ek_public is not None:
        mine = public_key_of(ek_public).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if mine != theirs:
            reasons.append("the certificate is not for this EK: its public key differs from the TPM's EK")
    with warnings.catch_warnings():
        # Vendor CA names break RFC 5280's length bounds (Google's 79-byte CNs); they still match.
        warnings.filterwarnings("ignore", message="Attribute's length", category=UserWarning)
        chain = _build_chain(cert, manufacturer_cas)
    if chain is None:
        reasons.append(f"no chain from the EK certificate (issuer {cert.issuer.rfc4514_string()}) to a manufacturer "
                       "root in the configured directory")  # fmt: skip
        chain = [cert]
    for c in chain:
        if not _valid_at(c, at):
            who = c.subject.rfc4514_string() or "the EK certificate"
            reasons.append(f"{who} is not valid at {at.isoformat()} (valid {c.not_valid_before_utc.isoformat()} to "
                           f"{c.not_valid_after_utc.isoformat()})")  # fmt: skip
    return EkVerification(not reasons, tuple(chain), tuple(reasons), tuple(notes))


def _build_chain(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate] | None:
    """Depth-first: issuers by name whose signature verifies, ending at a self-signed anchor."""

    def walk(current: x509.Certificate, path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        if len(path) > MAX_CHAIN:
            return None
        for issuer in pool:
            if issuer.subject != current.issuer or issuer in path or not _is_ca(issuer):
                continue
            try:
                current.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            if _self_signed(issuer):
                return [*path, issuer]
            found = walk(issuer, [*path, issuer])
            if found is not None:
                return found
        return None

    return walk(cert, [cert])
