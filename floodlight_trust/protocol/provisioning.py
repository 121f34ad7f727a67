"""What authenticates credentials the VM provisions to one enrollment of one VNF enclave.

The VM signs, with its CA key, a *provisioning statement* binding the enrollment nonce (the one the
enclave itself quoted over), the VNF, the enclave's bound key, the leaf certificate and the wrapped
key (vm-generated mode). The enclave pins the VM CA certificate, so it checks the signature without
trusting the agent that relays the message. A statement starts with a fixed label and a NUL, so its
bytes can never be mistaken for a DER structure the CA signs otherwise (certificates, CRLs, OCSP
responses all start with 0x30).

Both sides call :func:`provisioning_statement`, so they can never disagree on the layout. Pure:
bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from floodlight_trust.errors import InputError
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.protocol.keywrap import WrappedKey

LABEL = b"floodlight-trust provisioning v1\x00"


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def provisioning_statement(
    *, nonce: bytes, vnf: str, enclave_spki: bytes, leaf_der: bytes, wrapped: WrappedKey | None
) -> bytes:
    """The bytes the VM signs for one credentials message (every field length-prefixed)."""
    if len(nonce) != NONCE_BYTES:
        raise InputError(f"provisioning nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    wrapped_bytes = (
        b""
        if wrapped is None
        else _field(wrapped.ephemeral_public_key) + _field(wrapped.iv) + _field(wrapped.ciphertext)
    )
    return (
        LABEL
        + nonce
        + _field(vnf.encode("utf-8"))
        + hashlib.sha256(enclave_spki).digest()
        + hashlib.sha256(leaf_der).digest()
        + _field(wrapped_bytes)
    )


def sign_statement(key: PrivateKeyTypes, statement: bytes) -> bytes:
    """Sign a provisioning statement with the CA key (ECDSA-SHA256 or RSA-PSS-SHA256)."""
    if not statement.startswith(LABEL):
        raise InputError("not a provisioning statement")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(statement, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(statement, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    raise InputError(f"a {type(key).__name__} cannot sign provisioning statements")


def statement_signed_by(public_key: PublicKeyTypes, statement: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``statement`` verifies with ``public_key`` (the pinned CA's)."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, statement, ec.ECDSA(hashes.SHA256()))
            return True
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                signature, statement, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
            )
            return True
    except InvalidSignature:
        return False
    return False
