"""The paper's VM-generated-key mode: a private key sealed to one enclave's attested public key.

ECDH P-256 between a fresh ephemeral key and the enclave's bound key, HKDF-SHA256 to a 256-bit key,
AES-256-GCM over the PKCS#8 DER of the private key. The associated data names the VNF and both
public keys, so a wrapped key cannot be replayed to another enclave or relabelled. Only the holder of
the enclave's private key can open it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from floodlight_trust.errors import InputError, VerificationError

ALGORITHM = "ECDH-P256+HKDF-SHA256+AES-256-GCM"
_INFO = b"floodlight-trust key wrap v1"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    ephemeral_public_key: bytes  # SPKI DER
    iv: bytes  # 12 bytes
    ciphertext: bytes  # AES-GCM ciphertext || tag

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "ephemeral_public_key": base64.b64encode(self.ephemeral_public_key).decode(),
            "iv": base64.b64encode(self.iv).decode(),
            "ciphertext": base64.b64encode(self.ciphertext).decode(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WrappedKey:
        if d.get("algorithm") != ALGORITHM:
            raise InputError(f"wrapped key: unsupported algorithm {d.get('algorithm')!r}", hint=f"expected {ALGORITHM}")
        try:
            return cls(
                base64.b64decode(d["ephemeral_public_key"], validate=True),
                base64.b64decode(d["iv"], validate=True),
                base64.b64decode(d["ciphertext"], validate=True),
            )
        except (KeyError, ValueError) as e:
            raise InputError(f"wrapped key: malformed ({e})") from None


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_p256(spki_der: bytes, what: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(spki_der)
    except ValueError:
        raise InputError(f"{what} is not a SubjectPublicKeyInfo DER") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{what} is not a P-256 public key")
    return key


def _derive(shared: bytes, eph_spki: bytes, recipient_spki: bytes) -> bytes:
    salt = hashlib.sha256(eph_spki + recipient_spki).digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(shared)


def _aad(context: bytes, eph_spki: bytes, recipient_spki: bytes) -> bytes:
    return _INFO + b"|" + context + b"|" + hashlib.sha256(eph_spki).digest() + hashlib.sha256(recipient_spki).digest()


def wrap_private_key(private_key_der: bytes, recipient_spki_der: bytes, *, context: bytes) -> WrappedKey:
    """Encrypt ``private_key_der`` (PKCS#8) so that only the holder of the recipient's key opens it.

    ``context`` (e.g. ``b"vnf:firewall"``) is authenticated: unwrapping with another context fails.
    """
    recipient = _load_p256(recipient_spki_der, "recipient key")
    eph = ec.generate_private_key(ec.SECP256R1())
    eph_spki = _spki(eph.public_key())
    key = _derive(eph.exchange(ec.ECDH(), recipient), eph_spki, recipient_spki_der)
    iv = os.urandom(12)
    ct = AESGCM(key).encrypt(iv, private_key_der, _aad(context, eph_spki, recipient_spki_der))
    return WrappedKey(eph_spki, iv, ct)


def unwrap_private_key(wrapped: WrappedKey, recipient: ec.EllipticCurvePrivateKey, *, context: bytes) -> bytes:
    """Open a wrapped key with the enclave's private key; VerificationError if it was not sealed to it."""
    if len(wrapped.iv) != 12:
        raise InputError(f"wrapped key: IV must be 12 bytes, got {len(wrapped.iv)}")
    eph = _load_p256(wrapped.ephemeral_public_key, "ephemeral key")
    recipient_spki = _spki(recipient.public_key())
    key = _derive(recipient.exchange(ec.ECDH(), eph), wrapped.ephemeral_public_key, recipient_spki)
    try:
        return AESGCM(key).decrypt(
            wrapped.iv, wrapped.ciphertext, _aad(context, wrapped.ephemeral_public_key, recipient_spki)
        )
    except InvalidTag:
        raise VerificationError(
            "wrapped key does not open with this enclave's key (sealed to another enclave, or tampered)"
        ) from None
