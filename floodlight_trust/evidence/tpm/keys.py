"""Attestation and endorsement keys in the forms real tools produce.

An AK arrives as TPM2B_PUBLIC (``tpm2_createak -u``), TPMT_PUBLIC (go-tpm-tools), a PEM public key
(``tpm2_createak -f pem``) or an X.509 certificate (PEM or DER). :func:`load_key` recognises the
form; the TPM forms also give the key's TPM name and attributes, which the X.509 forms do not have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from floodlight_trust.errors import Location, ParseError
from floodlight_trust.evidence.tpm.structures import EccCurve, TpmAlg, TpmPublic, parse_public

_CURVES: dict[int, type[ec.EllipticCurve]] = {
    EccCurve.NIST_P256: ec.SECP256R1,
    EccCurve.NIST_P384: ec.SECP384R1,
    EccCurve.NIST_P521: ec.SECP521R1,
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def public_key_of(pub: TpmPublic) -> PublicKey:
    """The ``cryptography`` key of a TPMT_PUBLIC; a ParseError if the values are not a valid key."""
    try:
        if pub.type == TpmAlg.RSA:
            return rsa.RSAPublicNumbers(pub.exponent, int.from_bytes(pub.modulus, "big")).public_key()
        curve = _CURVES.get(int(pub.curve))
        if curve is None:
            raise ParseError(f"TPMT_PUBLIC: ECC curve {pub.describe()} is not supported (P-256, P-384, P-521)")
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(pub.x, "big"), int.from_bytes(pub.y, "big"), curve()
        ).public_key()
    except ValueError as e:
        raise ParseError(f"TPMT_PUBLIC: not a valid {pub.describe()} public key ({e})") from None


@dataclass(frozen=True)
class TpmKey:
    """A public key with, when it came in a TPM form, its TPMT_PUBLIC (name, attributes)."""

    public_key: PublicKey
    tpm_public: TpmPublic | None = None
    certificate: x509.Certificate | None = None

    @property
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def spki_sha256(self) -> str:
        """The key's fingerprint, the same whatever form it came in: what hosts are pinned to."""
        return hashlib.sha256(self.spki_der).hexdigest()

    @property
    def name(self) -> bytes | None:
        return self.tpm_public.name if self.tpm_public is not None else None

    def describe(self) -> str:
        k = self.public_key
        if isinstance(k, rsa.RSAPublicKey):
            return f"RSA-{k.key_size} e={k.public_numbers().e}"
        return f"ECC-{k.curve.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.describe(), "spki_sha256": self.spki_sha256}
        if self.tpm_public is not None:
            out["name"] = self.tpm_public.name.hex()
            out["object_attributes"] = f"{self.tpm_public.object_attributes:08x}"
        return out


def load_key(data: bytes, what: str = "key") -> TpmKey:
    """Read a key from TPM2B_PUBLIC, TPMT_PUBLIC, PEM (public key or certificate) or DER."""
    data = bytes(data)
    if b"-----BEGIN" in data:
        try:
            if b"CERTIFICATE-----" in data:
                cert = x509.load_pem_x509_certificate(data)
                return TpmKey(_checked(cert.public_key(), what), certificate=cert)
            return TpmKey(_checked(serialization.load_pem_public_key(data), what))
        except (ValueError, UnsupportedAlgorithm) as e:
            raise ParseError(
                f"{what}: PEM is not a public key or certificate ({e})", location=Location(offset=0)
            ) from None
    if data[:1] == b"\x30":  # DER: SubjectPublicKeyInfo or a certificate
        try:
            cert = x509.load_der_x509_certificate(data)
            return TpmKey(_checked(cert.public_key(), what), certificate=cert)
        except ValueError:
            pass
        try:
            return TpmKey(_checked(serialization.load_der_public_key(data), what))
        except (ValueError, UnsupportedAlgorithm) as e:
            raise ParseError(
                f"{what}: DER is not a public key or certificate ({e})", location=Location(offset=0)
            ) from None
    pub = parse_public(data)
    return TpmKey(public_key_of(pub), tpm_public=pub)


def _checked(key: Any, what: str) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return key
    raise ParseError(f"{what}: {type(key).__name__} is not an RSA or EC key")
