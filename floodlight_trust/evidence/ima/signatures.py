"""IMA file signatures (the ``sig`` field: the file's ``security.ima`` xattr) and their verification.

Layout (``signature_v2_hdr``): ``type u8`` (3 = EVM_IMA_XATTR_DIGSIG, 5 = EVM_XATTR_PORTABLE_DIGSIG,
6 = IMA_VERITY_DIGSIG) ``| version u8 (2 or 3) | hash_algo u8 (kernel enum hash_algo) | key id [4]
(big-endian, the low 32 bits of the key's subject key identifier) | sig_size u16 BE | signature``.

What is signed, as the kernel checks it (security/integrity/ima/ima_appraise.c ``xattr_verify``,
``calc_file_id_hash``; digsig_asymmetric.c ``asymmetric_verify``):

* version 2 signs the file digest itself; the header's hash algorithm names the digest (the kernel
  measures an appraised file with the signature's algorithm, so the two agree in a real list).
* version 3 signs the digest of ``struct ima_file_id`` = ``hash_type u8`` (the xattr type of the
  signature) ``| hash_algorithm u8`` (kernel enum of the *file digest's* algorithm) ``| the file
  digest`` (only its real length, not the struct's 64-byte maximum), hashed with the *file
  digest's* algorithm and verified with the header's hash algorithm (so, again, they must agree).
  Kernels from 5.19 accept v3 only for fs-verity signatures (type 6, which must be v3); later ones
  also for types 3 and 5, with ``hash_type`` the signature's own type, which is what is done here.

RSA signatures are PKCS#1 v1.5, ECDSA and DSA ones DER ``(r, s)``, all over the prehashed digest.
As Keylime does, a keyring is a set of X.509 certificates or bare public keys (SubjectPublicKeyInfo);
the keys whose id matches the header are tried. A key's id is the low 32 bits of SHA-1 over its
subjectPublicKey BIT STRING contents (RFC 5280 method 1, what evmctl and the kernel's x509 parser
compute) and, for a certificate, also of its subject key identifier.

Key types. The kernel's IMA verifies RSA, ECDSA on the NIST curves, EC-RDSA and SM2; it has no
secp256k1 and no DSA. Keylime verifies secp256k1 and DSA signatures, and its own test lists carry
them (tests/data/ima-sig/keylime). The list records the xattr whether or not the kernel could
appraise it, and what a verifier concludes is "this digest was signed by a key the operator put in
the keyring", so any ECDSA curve and DSA key that ``cryptography`` verifies is verified here too:
trust comes from the keyring, not from the kernel's algorithm list. A key of another type (Ed25519,
X25519, ...) or a hash the verifier lacks (sm3, streebog) gives ``INVALID`` with the problem
:attr:`SignatureProblem.UNSUPPORTED` and a reason naming the key or algorithm, never an exception.

``ima-modsig`` entries carry an appended signature (``modsig``: the raw PKCS#7 SignedData, as
``sign-file`` appends it to modules and kernel images) and ``d-modsig``, the digest of the file
without it. The kernel (ima_modsig.c, crypto/asymmetric_keys/pkcs7_verify.c) checks the single
signerInfo: with authenticated attributes, their messageDigest must be that digest and the
signature covers the attributes re-tagged as a SET OF; without (sign-file's default), it covers
the digest itself. ``cryptography`` has no PKCS#7 verification, so :func:`parse_module_signature`
walks the DER (signerInfos -> issuerAndSerialNumber or subjectKeyIdentifier, digestAlgorithm,
authenticatedAttributes, encryptedDigest) and the signature is verified with the keyring
certificate that the signer names. As in the kernel, an appended signature counts when the entry
has no ``sig`` or its key is unknown.

``evm-sig`` entries carry the ``security.evm`` signature with the protected xattr values and the
file's uid, gid and mode. A portable signature (type 5) signs the digest of the xattr values in
order followed by ``struct h_misc`` (inode number and generation zeroed, 64-bit layout; see
:func:`evm_portable_digest`) and is verified like a file signature. Other EVM signatures (type 3)
also cover the inode number and generation, which the list does not record, so they stay
``unchecked`` even with a keyring; HMACs are not signatures at all.

The real ``imatest.log`` entries (an appended signature by ``CN=Subject``, serial ``250b78...``,
and an EVM portable signature by key ``78511c2a``) are parsed and identified, but their keys are
not published, so they are reported ``unchecked`` (no keyring) or ``unknown-key``; the tests
verify signatures made with generated keys in the same formats.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from floodlight_trust.claims import SignatureStatus
from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.der import DerError
from floodlight_trust.evidence.der import children as der_children
from floodlight_trust.evidence.der import expect as der_expect
from floodlight_trust.evidence.der import tlv as der_tlv
from floodlight_trust.evidence.ima.templates import DIGEST_SIZES, KERNEL_HASH_ALGOS

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - IMA signatures made with SHA-1 exist; policy decides
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


IMA_VERITY_DIGSIG = 6

KeyringEntry = x509.Certificate | CertificatePublicKeyTypes  # a certificate or a bare public key


class SignatureProblem(StrEnum):
    """Why a signature is not valid (``NONE`` when it is, or was not checked)."""

    NONE = "none"
    BAD_SIGNATURE = "bad-signature"  # a key with the id was tried and the signature is wrong
    MALFORMED = "malformed"  # the header or its length is wrong (e.g. sig_size not the bytes that follow)
    UNSUPPORTED = "unsupported"  # the key type or hash algorithm cannot be verified here


class SignatureCheck(NamedTuple):
    """The result of checking one signature."""

    status: SignatureStatus
    key_id: str | None  # the header's key id (or, for an appended signature, the signer's)
    reason: str
    problem: SignatureProblem = SignatureProblem.NONE


def file_id_digest(xattr_type: int, file_algo: str, file_digest: bytes) -> bytes:
    """What a version 3 signature signs: the digest of ``struct ima_file_id`` (see the module doc)."""
    file_id = bytes([xattr_type, KERNEL_HASH_ALGOS.index(file_algo)]) + file_digest
    h = hashes.Hash(_HASHES[file_algo])
    h.update(file_id)
    return h.finalize()


class SignatureHeader(NamedTuple):
    xattr_type: int
    version: int
    hash_algorithm: str
    key_id: str  # 8 hex digits
    signature: bytes


class SignatureFormatError(ParseError, ValueError):
    """A malformed ``sig`` or ``modsig`` field: the project's ParseError (and a ValueError, which
    the appraisal code here catches to turn it into a finding)."""


def parse_signature(sig: bytes) -> SignatureHeader:
    """Parse a ``sig`` field; SignatureFormatError (a ParseError and a ValueError) says what is wrong."""
    try:
        return _parse_signature(sig)
    except (ValueError, IndexError) as e:
        raise SignatureFormatError(str(e)) from None


def _parse_signature(sig: bytes) -> SignatureHeader:
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
    kid = public_key_id(cert.public_key())
    if kid is not None:
        ids.add(kid)
    return ids


def public_key_id(key: CertificatePublicKeyTypes) -> str | None:
    """The IMA key id of a public key: the low 32 bits of SHA-1 over its subjectPublicKey BIT STRING
    contents (the DER RSAPublicKey, the uncompressed EC point, the DER DSA ``y``), or None for a key
    ``cryptography`` cannot identify."""
    if isinstance(key, rsa.RSAPublicKey):  # the common cases, without a DER round trip
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        try:
            return x509.SubjectKeyIdentifier.from_public_key(key).digest[-4:].hex()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return None
    return hashlib.sha1(raw).digest()[-4:].hex()  # noqa: S324 - an identifier, not a security hash


def _primary_key_id(cert: x509.Certificate) -> str:
    """The id the kernel would give ``cert`` (from its subject key identifier, if it has one)."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest[-4:].hex()
    except x509.ExtensionNotFound:
        return min(key_ids(cert))


class Keyring:
    """Certificates and bare public keys, indexed by IMA key id."""

    def __init__(self, entries: Sequence[KeyringEntry] = ()):
        self._by_id: dict[str, list[CertificatePublicKeyTypes]] = {}
        self._by_issuer_serial: dict[tuple[bytes, int], x509.Certificate] = {}
        self._by_skid: dict[bytes, x509.Certificate] = {}
        for entry in entries:
            if not isinstance(entry, x509.Certificate):
                kid = public_key_id(entry)
                self._by_id.setdefault(kid or "", []).append(entry)
                continue
            cert = entry
            for kid in key_ids(cert):
                self._by_id.setdefault(kid, []).append(cert.public_key())
            self._by_issuer_serial[(_issuer_der(cert), cert.serial_number)] = cert
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
                self._by_skid[ski] = cert
            except x509.ExtensionNotFound:
                pass

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def verify(self, sig: bytes, file_algo: str, file_digest: bytes) -> SignatureCheck:
        """The check of one ``sig`` field over a file digest."""
        try:
            hdr = parse_signature(sig)
        except ValueError as e:
            return SignatureCheck(SignatureStatus.INVALID, _raw_key_id(sig), str(e), SignatureProblem.MALFORMED)
        if not self._by_id:
            return SignatureCheck(SignatureStatus.UNCHECKED, hdr.key_id, "no keyring given")
        keys = self._by_id.get(hdr.key_id)
        if not keys:
            return SignatureCheck(
                SignatureStatus.UNKNOWN_KEY, hdr.key_id, f"no key with id {hdr.key_id} in the keyring"
            )
        algo = _HASHES.get(hdr.hash_algorithm)
        if algo is None:
            return SignatureCheck(
                SignatureStatus.INVALID,
                hdr.key_id,
                f"hash algorithm {hdr.hash_algorithm} is not supported",
                SignatureProblem.UNSUPPORTED,
            )
        if DIGEST_SIZES.get(file_algo) != len(file_digest) or file_algo != hdr.hash_algorithm:
            return SignatureCheck(
                SignatureStatus.INVALID,
                hdr.key_id,
                f"v{hdr.version} signature uses {hdr.hash_algorithm}, the file digest is {file_algo}",
                SignatureProblem.BAD_SIGNATURE,
            )
        if hdr.version == 2:
            if hdr.xattr_type == IMA_VERITY_DIGSIG:
                return SignatureCheck(
                    SignatureStatus.INVALID,
                    hdr.key_id,
                    "an fs-verity signature (type 6) must be version 3",
                    SignatureProblem.MALFORMED,
                )
            signed = file_digest
        else:
            signed = file_id_digest(hdr.xattr_type, file_algo, file_digest)
        unsupported: list[str] = []
        for key in keys:
            result = _verify_one(key, hdr.signature, signed, algo)
            if result is True:
                return SignatureCheck(SignatureStatus.VALID, hdr.key_id, "signature verified")
            if result is not False:
                unsupported.append(result)
        if unsupported and len(unsupported) == len(keys):
            return SignatureCheck(
                SignatureStatus.INVALID,
                hdr.key_id,
                f"key {hdr.key_id}: " + "; ".join(unsupported),
                SignatureProblem.UNSUPPORTED,
            )
        return SignatureCheck(
            SignatureStatus.INVALID,
            hdr.key_id,
            f"signature does not verify with key {hdr.key_id} ({_key_kind(keys[0])}, {hdr.hash_algorithm})",
            SignatureProblem.BAD_SIGNATURE,
        )

    def verify_modsig(self, der: bytes, file_algo: str, file_digest: bytes) -> SignatureCheck:
        """(status, signer, reason) for an appended signature (``modsig``) over the file digest logged
        in ``d-modsig`` (the file without its signature), as the kernel's pkcs7 verification checks it:
        with authenticated attributes, their messageDigest must be that digest and the signature
        covers the attributes (as a SET OF); without, the signature covers the digest itself."""
        try:
            m = parse_module_signature(der)
        except (DerError, ValueError, IndexError) as e:
            return SignatureCheck(SignatureStatus.INVALID, None, f"appended signature: {e}", SignatureProblem.MALFORMED)
        if not self._by_id:
            return SignatureCheck(SignatureStatus.UNCHECKED, m.signer, "no keyring given")
        if m.subject_key_id is not None:
            cert = self._by_skid.get(m.subject_key_id)
        else:
            assert m.issuer is not None and m.serial is not None
            cert = self._by_issuer_serial.get((m.issuer, m.serial))
        if cert is None:
            return SignatureCheck(
                SignatureStatus.UNKNOWN_KEY, m.signer, f"no certificate for {m.signer} in the keyring"
            )
        key_id = _primary_key_id(cert)
        if file_algo != m.digest_algorithm or DIGEST_SIZES.get(file_algo) != len(file_digest):
            return SignatureCheck(
                SignatureStatus.INVALID,
                key_id,
                f"appended signature uses {m.digest_algorithm}, the d-modsig digest is {file_algo}",
                SignatureProblem.BAD_SIGNATURE,
            )
        algo = _HASHES[m.digest_algorithm]
        signed = file_digest
        if m.authenticated_attributes is not None:
            if m.message_digest != file_digest:
                return SignatureCheck(
                    SignatureStatus.INVALID,
                    key_id,
                    "the signed messageDigest is not the file's d-modsig digest",
                    SignatureProblem.BAD_SIGNATURE,
                )
            h = hashes.Hash(algo)
            h.update(m.authenticated_attributes)
            signed = h.finalize()
        result = _verify_one(cert.public_key(), m.signature, signed, algo)
        if result is True:
            return SignatureCheck(SignatureStatus.VALID, key_id, "appended signature verified")
        if result is not False:
            return SignatureCheck(
                SignatureStatus.INVALID,
                key_id,
                f"appended signature by {m.signer}: {result}",
                SignatureProblem.UNSUPPORTED,
            )
        return SignatureCheck(
            SignatureStatus.INVALID,
            key_id,
            f"appended signature does not verify with {m.signer}",
            SignatureProblem.BAD_SIGNATURE,
        )

    def verify_evmsig(self, sig: bytes, xattr_values: bytes, uid: int, gid: int, mode: int) -> SignatureCheck:
        """(status, key id, reason) for an ``evm-sig`` entry's EVM signature. Only portable
        signatures (type 5) can be checked off the host: the others cover the inode number and
        generation (and maybe the file system UUID), which the list does not record."""
        try:
            hdr = parse_signature(sig)
        except ValueError as e:
            return SignatureCheck(
                SignatureStatus.INVALID, _raw_key_id(sig), f"EVM signature: {e}", SignatureProblem.MALFORMED
            )
        if hdr.xattr_type != EVM_XATTR_PORTABLE_DIGSIG:
            return SignatureCheck(
                SignatureStatus.UNCHECKED,
                hdr.key_id,
                f"EVM signature type {hdr.xattr_type} covers the inode number, which the list does not record",
            )
        if hdr.hash_algorithm not in _HASHES:
            return SignatureCheck(
                SignatureStatus.INVALID,
                hdr.key_id,
                f"hash algorithm {hdr.hash_algorithm} is not supported",
                SignatureProblem.UNSUPPORTED,
            )
        digest = evm_portable_digest(hdr.hash_algorithm, xattr_values, uid, gid, mode)
        return self.verify(sig, hdr.hash_algorithm, digest)


EVM_XATTR_PORTABLE_DIGSIG = 5
_H_MISC = struct.Struct("<QIIIH2x")  # struct h_misc on 64-bit kernels: ino, generation, uid, gid, mode


def evm_portable_digest(algo: str, xattr_values: bytes, uid: int, gid: int, mode: int) -> bytes:
    """The digest an EVM portable signature signs (security/integrity/evm/evm_crypto.c
    ``evm_calc_hmac_or_hash`` + ``hmac_add_misc``): the protected xattr values in order, then
    ``struct h_misc`` with the inode number and generation zeroed, as a 64-bit kernel lays it out."""
    h = hashes.Hash(_HASHES[algo])
    h.update(xattr_values)
    h.update(_H_MISC.pack(0, 0, uid, gid, mode))
    return h.finalize()


def _verify_one(
    key: CertificatePublicKeyTypes, signature: bytes, digest: bytes, algo: hashes.HashAlgorithm
) -> bool | str:
    """True if ``signature`` over the prehashed ``digest`` verifies with ``key``, False if it does
    not, or a reason why this key cannot verify IMA signatures at all."""
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algo))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algo)))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, digest, utils.Prehashed(algo))
        else:
            return f"{_key_kind(key)} keys cannot verify IMA signatures (RSA, ECDSA or DSA)"
    except InvalidSignature:
        return False
    except UnsupportedAlgorithm as e:
        return f"{_key_kind(key)} with {algo.name} is not supported here ({e})"
    except ValueError:  # e.g. an ECDSA or DSA signature that is not DER (r, s)
        return False
    return True


def _key_kind(key: CertificatePublicKeyTypes) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    return type(key).__name__.removeprefix("_").removesuffix("PublicKey") or "unknown"


def _raw_key_id(sig: bytes) -> str | None:
    """The key id bytes of a header too malformed to parse, when there are enough of them."""
    return sig[3:7].hex() if len(sig) >= 7 and sig[0] in (3, 5, 6) else None


# ---------------------------------------------------------------------------------------------
# ima-modsig: the PKCS#7 SignedData appended to a file (kernel modules, kernel images)


class ModuleSignature(NamedTuple):
    """The parts of an appended signature's PKCS#7 SignedData the kernel uses (one signer)."""

    digest_algorithm: str
    issuer: bytes | None  # DER of the signer's issuer Name (issuerAndSerialNumber), or None
    serial: int | None
    subject_key_id: bytes | None  # the signer's subject key identifier ([0] sid), or None
    authenticated_attributes: bytes | None  # DER of the attributes, re-tagged as a SET, or None
    message_digest: bytes | None  # the messageDigest attribute, if there are attributes
    signature: bytes

    @property
    def signer(self) -> str:
        """How the signature names its key: ``issuer=..., serial=...`` or ``skid=...``."""
        if self.subject_key_id is not None:
            return "skid=" + self.subject_key_id.hex()
        issuer = _name_text(self.issuer or b"")
        return f"issuer={issuer}, serial={self.serial:x}"


_OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_OID_MESSAGE_DIGEST = bytes.fromhex("2a864886f70d010904")  # 1.2.840.113549.1.9.4
_DIGEST_OIDS = {
    bytes.fromhex("2b0e03021a"): "sha1",
    bytes.fromhex("608648016503040204"): "sha224",
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
}


def _name_text(der: bytes) -> str:
    try:
        _, s, e = der_tlv(der, 0, len(der))
        rdns = der_children(der, s, e)
        parts = []
        for _, _, rs, re_ in rdns:
            for _, _, as_, ae in der_children(der, rs, re_):
                (_, _, os_, oe), (_, _, vs, ve) = der_children(der, as_, ae)[:2]
                oid = der[os_:oe]
                label = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}.get(oid, oid.hex())
                parts.append(f"{label}={der[vs:ve].decode('utf-8', 'replace')}")
        return ",".join(parts)
    except (DerError, ValueError, IndexError):
        return der.hex()


def parse_module_signature(der: bytes) -> ModuleSignature:
    """Parse the ``modsig`` field (a DER PKCS#7 ContentInfo with SignedData); SignatureFormatError
    (a ParseError and a ValueError; DerError, located, where the DER reader finds it) if malformed."""
    try:
        return _parse_module_signature(der)
    except (ValueError, IndexError) as e:
        raise SignatureFormatError(str(e) or "malformed PKCS#7 message") from None


def _parse_module_signature(der: bytes) -> ModuleSignature:
    end = len(der)
    _, s, e = der_tlv(der, 0, end)
    if e != end:
        raise ValueError(f"{end - e} bytes after the PKCS#7 message")
    top = der_children(der, s, e)
    if len(top) < 2 or top[0][0] != 0x06 or der[top[0][2] : top[0][3]] != _OID_SIGNED_DATA:
        raise ValueError("not a PKCS#7 SignedData message")
    s, e = der_expect(top[1], 0xA0, "SignedData wrapper")
    (sd,) = der_children(der, s, e)[:1]
    s, e = der_expect(sd, 0x30, "SignedData")
    parts = der_children(der, s, e)
    signer_infos = parts[-1]
    s, e = der_expect(signer_infos, 0x31, "signerInfos")
    infos = der_children(der, s, e)
    if len(infos) != 1:
        raise ValueError(f"{len(infos)} signers; an appended signature has exactly one")
    s, e = der_expect(infos[0], 0x30, "SignerInfo")
    fields = der_children(der, s, e)
    if len(fields) < 5:
        raise ValueError("SignerInfo has too few fields")
    sid = fields[1]
    issuer: bytes | None = None
    serial: int | None = None
    skid: bytes | None = None
    if sid[0] == 0x30:
        name, number = der_children(der, sid[2], sid[3])[:2]
        issuer = der[name[1] : name[3]]
        serial = int.from_bytes(der[number[2] : number[3]], "big", signed=True)
    elif sid[0] == 0x80:
        skid = der[sid[2] : sid[3]]
    else:
        raise ValueError(f"SignerInfo identifies its key with DER tag 0x{sid[0]:02x}")
    algo_s, algo_e = der_expect(fields[2], 0x30, "digestAlgorithm")
    oid = der_children(der, algo_s, algo_e)[0]
    digest_algorithm = _DIGEST_OIDS.get(der[oid[2] : oid[3]])
    if digest_algorithm is None:
        raise ValueError(f"digest algorithm OID {der[oid[2] : oid[3]].hex()} is not supported")
    rest = fields[3:]
    attrs: bytes | None = None
    message_digest: bytes | None = None
    if rest[0][0] == 0xA0:  # [0] IMPLICIT authenticatedAttributes, signed as a SET OF
        a = rest[0]
        attrs = b"\x31" + der[a[1] + 1 : a[3]]
        for _, _, at_s, at_e in der_children(der, a[2], a[3]):
            at_oid, values = der_children(der, at_s, at_e)[:2]
            if der[at_oid[2] : at_oid[3]] == _OID_MESSAGE_DIGEST:
                (value,) = der_children(der, values[2], values[3])[:1]
                message_digest = der[value[2] : value[3]]
        if message_digest is None:
            raise ValueError("authenticated attributes without a messageDigest")
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError("SignerInfo has no signature")
    sig_s, sig_e = der_expect(rest[1], 0x04, "encryptedDigest")
    return ModuleSignature(digest_algorithm, issuer, serial, skid, attrs, message_digest, der[sig_s:sig_e])


def _issuer_der(cert: x509.Certificate) -> bytes:
    tbs = cert.tbs_certificate_bytes
    _, s, e = der_tlv(tbs, 0, len(tbs))
    fields = der_children(tbs, s, e)
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    issuer = fields[2]
    return tbs[issuer[1] : issuer[3]]
