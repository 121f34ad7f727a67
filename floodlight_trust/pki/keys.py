"""Key pairs of the key types a profile or the CA may ask for, and the hash each signs with."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from floodlight_trust.errors import InputError
from floodlight_trust.pki.profile import KeyType

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def parse_key_type(value: str | KeyType) -> KeyType:
    try:
        return KeyType(value)
    except ValueError:
        raise InputError(f"unknown key type {value!r}", hint="one of: " + ", ".join(k.value for k in KeyType)) from None


def generate_private_key(key_type: KeyType | str = KeyType.EC_P256) -> PrivateKey:
    """A fresh private key of ``key_type`` (``ec-p256``, ``ec-p384``, ``rsa-2048``, ``rsa-3072``)."""
    kt = parse_key_type(key_type)
    if kt is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if kt is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    bits = 2048 if kt is KeyType.RSA_2048 else 3072
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def check_subject_key(public_key: object) -> PublicKey:
    """Accept the public keys a JDK 8+ TLS peer can use: EC P-256/P-384/P-521, RSA >= 2048."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise InputError(f"EC curve {public_key.curve.name} is not supported for TLS client certificates")
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise InputError(f"RSA key of {public_key.key_size} bits is too small (need >= 2048)")
        return public_key
    raise InputError(f"unsupported public key type {type(public_key).__name__} (need EC or RSA)")
