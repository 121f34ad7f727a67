"""MakeCredential: prove that an attestation key lives in the same TPM as an endorsement key.

The verifier encrypts a fresh secret to the EK, bound to the AK's name (TPM 2.0 Part 1, 24:
"Credential Protection"); only the TPM holding the EK's private key, and only for a loaded object
with exactly that name, returns the secret from TPM2_ActivateCredential. Because the name is
nameAlg || H(TPMT_PUBLIC), it covers the AK's attributes (restricted, fixedTPM) too.

  seed      RSA EK: random, RSA-OAEP(nameAlg, label "IDENTITY\\0") to the EK;
            ECC EK: KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, ek.x) with Z from ECDH to the EK
  symKey    KDFa(nameAlg, seed, "STORAGE", name, "", EK symmetric key bits)
  encId     AES-CFB(symKey, IV 0) over TPM2B(secret)
  hmacKey   KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
  blob      TPM2B_ID_OBJECT = TPM2B(HMAC(hmacKey, encId || name)) || encId

Pure: keys, names and the secret in, bytes out; the randomness is drawn here unless a test fixes it.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to "decrepit" in cryptography 47; the TPM's credential protection still uses it
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - cryptography < 47
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from floodlight_trust.errors import InputError, Location, ParseError
from floodlight_trust.evidence.tpm.keys import public_key_of
from floodlight_trust.evidence.tpm.structures import DIGEST_SIZES, HASHERS, TpmAlg, TpmPublic

TOOLS_MAGIC = 0xBADCC0DE  # tpm2_makecredential's output file header
TOOLS_VERSION = 1
_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _label(label: bytes) -> bytes:
    return label if label.endswith(b"\0") else label + b"\0"


def kdfa(hash_name: str, key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """TPM2 KDFa (SP 800-108 counter mode with HMAC), Part 1, 11.4.10.2."""
    out = b""
    counter = 0
    tail = _label(label) + context_u + context_v + struct.pack(">I", bits)
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, struct.pack(">I", counter) + tail, HASHERS[hash_name]).digest()
    return _truncate(out, bits)


def kdfe(hash_name: str, z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int) -> bytes:
    """TPM2 KDFe (SP 800-56A concatenation KDF), Part 1, 11.4.10.3."""
    out = b""
    counter = 0
    tail = z + _label(label) + party_u + party_v
    while len(out) * 8 < bits:
        counter += 1
        out += HASHERS[hash_name](struct.pack(">I", counter) + tail).digest()
    return _truncate(out, bits)


def _truncate(out: bytes, bits: int) -> bytes:
    out = out[: (bits + 7) // 8]
    if bits % 8:
        out = bytes([out[0] & (0xFF >> (8 - bits % 8))]) + out[1:]
    return out


@dataclass(frozen=True, slots=True)
class Credential:
    """TPM2_MakeCredential's two outputs (the TPM2B wrappers included)."""

    blob: bytes  # TPM2B_ID_OBJECT
    secret: bytes  # TPM2B_ENCRYPTED_SECRET

    def to_tools_format(self) -> bytes:
        """The file ``tpm2_makecredential -o`` writes and ``tpm2_activatecredential -i`` reads."""
        return struct.pack(">II", TOOLS_MAGIC, TOOLS_VERSION) + self.blob + self.secret


def parse_tools_credential(data: bytes) -> Credential:
    """Read a ``tpm2_makecredential`` output file, with byte offsets in errors."""
    data = bytes(data)
    if len(data) < 8 or struct.unpack(">II", data[:8]) != (TOOLS_MAGIC, TOOLS_VERSION):
        raise ParseError("credential file: header is not BADCC0DE version 1", location=Location(offset=0))
    pos = 8
    parts = []
    for what in ("TPM2B_ID_OBJECT", "TPM2B_ENCRYPTED_SECRET"):
        if len(data) - pos < 2:
            raise ParseError(f"credential file: {what} size missing", location=Location(offset=pos))
        size = int.from_bytes(data[pos : pos + 2], "big")
        if size > len(data) - pos - 2:
            raise ParseError(
                f"credential file: {what} of {size} bytes, {len(data) - pos - 2} left", location=Location(offset=pos)
            )
        parts.append(data[pos : pos + 2 + size])
        pos += 2 + size
    if pos != len(data):
        raise ParseError(f"credential file: {len(data) - pos} trailing bytes", location=Location(offset=pos))
    return Credential(parts[0], parts[1])


def make_credential(
    ek: TpmPublic,
    secret: bytes,
    object_name: bytes,
    *,
    seed: bytes | None = None,
    ephemeral_key: ec.EllipticCurvePrivateKey | None = None,
) -> Credential:
    """Encrypt ``secret`` to ``ek`` for the object named ``object_name`` (the AK's TPM name).

    ``seed`` (RSA) and ``ephemeral_key`` (ECC) exist for known-answer tests; in use they are drawn
    fresh for every credential.
    """
    name_alg = ek.name_alg
    digest_size = DIGEST_SIZES[name_alg]
    if not 0 < len(secret) <= digest_size:
        raise InputError(f"the credential secret must be 1..{digest_size} bytes, got {len(secret)}")
    sym = ek.symmetric
    if sym.algorithm != TpmAlg.AES or sym.mode != TpmAlg.CFB or sym.key_bits not in (128, 192, 256):
        raise InputError("the EK is not a storage key with AES-CFB (its symmetric definition is "
                         f"{sym.algorithm}/{sym.key_bits}/{sym.mode})")  # fmt: skip
    if not (ek.has(TpmPublic.RESTRICTED) and ek.has(TpmPublic.DECRYPT)):
        raise InputError("the EK is not a restricted decryption key")
    key = public_key_of(ek)
    if isinstance(key, rsa.RSAPublicKey):
        seed = seed if seed is not None else os.urandom(digest_size)
        h = _CRYPTO_HASHES[name_alg]()
        encrypted = key.encrypt(
            seed, padding.OAEP(mgf=padding.MGF1(h), algorithm=_CRYPTO_HASHES[name_alg](), label=b"IDENTITY\0")
        )
    else:
        ephemeral = ephemeral_key or ec.generate_private_key(key.curve)
        z = ephemeral.exchange(ec.ECDH(), key)
        size = (key.curve.key_size + 7) // 8
        numbers = ephemeral.public_key().public_numbers()
        ex, ey = numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big")
        seed = kdfe(name_alg, z, b"IDENTITY", ex, ek.x, 8 * digest_size)
        point = _tpm2b(ex) + _tpm2b(ey)
        encrypted = point
    sym_key = kdfa(name_alg, seed, b"STORAGE", object_name, b"", sym.key_bits)
    encryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = encryptor.update(_tpm2b(secret)) + encryptor.finalize()
    hmac_key = kdfa(name_alg, seed, b"INTEGRITY", b"", b"", 8 * digest_size)
    outer = hmac.new(hmac_key, enc_identity + object_name, HASHERS[name_alg]).digest()
    return Credential(blob=_tpm2b(_tpm2b(outer) + enc_identity), secret=_tpm2b(encrypted))


def _tpm2b(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data
