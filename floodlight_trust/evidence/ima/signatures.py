"""IMA file signatures (the ``sig`` field: the file's ``security.ima`` xattr) and their verification.

Layout (``signature_v2_hdr``): ``type u8`` (3 = EVM_IMA_XATTR_DIGSIG, 5 = portable EVM, 6 =
IMA_VERITY_DIGSIG) ``| version u8 (2 or 3) | hash_algo u8 (kernel enum) | key id [4] (big-endian,
the low 32 bits of the key's subject key identifier) | sig_size u16 BE | signature``.
Version 2 signs the file digest itself; version 3 signs the digest of ``ima_file_id`` =
``type u8 | hash_algo u8 | file digest``, both with the header's hash algorithm. RSA signatures are
PKCS#1 v1.5, ECDSA ones DER. As Keylime does, a keyring is a set of X.509 certificates; the key
whose id matches the header is tried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from floodlight_trust.claims import SignatureStatus
from floodlight_trust.evidence.ima.templates import DIGEST_SIZES, KERNEL_HASH_ALGOS

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - IMA signatures made with SHA-1 exist; policy decides
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class SignatureHeader(NamedTuple):
    xattr_type: int
    version: int
    hash_algorithm: str
    key_id: str  # 8 hex digits
    signature: bytes


def parse_signature(sig: bytes) -> SignatureHeader:
    """Parse a ``sig`` field; ValueError says what is wrong."""
    if len(sig) < 9:
        raise ValueError(f"signature field has {len(sig)} bytes, a v2/v3 header needs 9")
    xtype, version, algo_id = sig[0], sig[1], sig[2]
    if xtype not in (3, 5, 6):
        raise ValueError(f"signature type {xtype} is not a digital signature (3, 5 or 6)")
    if version not in (2, 3):
        raise ValueError(f"signature version {version} is not supported (2 or 3)")
    if algo_id >= len(KERNEL_HASH_ALGOS):
        raise ValueError(f"signature hash algorithm {algo_id} is unknown")
    size = int.from_bytes(sig[7:9], "big")
    if size != len(sig) - 9:
        raise ValueError(f"signature header says {size} bytes, the field holds {len(sig) - 9}")
    return SignatureHeader(xtype, version, KERNEL_HASH_ALGOS[algo_id], sig[3:7].hex(), sig[9:])


def key_ids(cert: x509.Certificate) -> set[str]:
    """The 4-byte ids (hex) IMA uses for ``cert``: the low 32 bits of its subject key identifier,
    and of SHA-1 over the public key (what evmctl computes when a certificate has no SKI)."""
    ids: set[str] = set()
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        ids.add(ski[-4:].hex())
    except x509.ExtensionNotFound:
        pass
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        return ids
    ids.add(hashlib.sha1(raw).digest()[-4:].hex())  # noqa: S324 - an identifier, not a security hash
    return ids


class Keyring:
    """Certificates indexed by IMA key id."""

    def __init__(self, certificates: Sequence[x509.Certificate] = ()):
        self._by_id: dict[str, list[x509.Certificate]] = {}
        for cert in certificates:
            for kid in key_ids(cert):
                self._by_id.setdefault(kid, []).append(cert)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def verify(self, sig: bytes, file_algo: str, file_digest: bytes) -> tuple[SignatureStatus, str | None, str]:
        """(status, key id, reason) for one ``sig`` field over a file digest."""
        try:
            hdr = parse_signature(sig)
        except ValueError as e:
            return SignatureStatus.INVALID, None, str(e)
        if not self._by_id:
            return SignatureStatus.UNCHECKED, hdr.key_id, "no keyring given"
        certs = self._by_id.get(hdr.key_id)
        if not certs:
            return SignatureStatus.UNKNOWN_KEY, hdr.key_id, f"no key with id {hdr.key_id} in the keyring"
        algo = _HASHES.get(hdr.hash_algorithm)
        if algo is None:
            return SignatureStatus.INVALID, hdr.key_id, f"hash algorithm {hdr.hash_algorithm} is not supported"
        if hdr.version == 2:
            if DIGEST_SIZES.get(file_algo) != len(file_digest) or file_algo != hdr.hash_algorithm:
                return (
                    SignatureStatus.INVALID,
                    hdr.key_id,
                    f"v2 signature uses {hdr.hash_algorithm}, the file digest is {file_algo}",
                )
            signed = file_digest
        else:
            file_id = (
                bytes([hdr.xattr_type, KERNEL_HASH_ALGOS.index(file_algo)]) if file_algo in KERNEL_HASH_ALGOS else b""
            )
            if not file_id:
                return SignatureStatus.INVALID, hdr.key_id, f"file digest algorithm {file_algo} is unknown"
            h = hashes.Hash(algo)
            h.update(file_id + file_digest)
            signed = h.finalize()
        for cert in certs:
            if _verify_one(cert, hdr.signature, signed, algo):
                return SignatureStatus.VALID, hdr.key_id, "signature verified"
        return SignatureStatus.INVALID, hdr.key_id, f"signature does not verify with key {hdr.key_id}"


def _verify_one(cert: x509.Certificate, signature: bytes, digest: bytes, algo: hashes.HashAlgorithm) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algo))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algo)))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True
