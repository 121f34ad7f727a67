"""TPM 2.0 structures, parsed from the bytes a TPM (or tpm2-tools) produces, with byte offsets.

TPM structures are big-endian and size-prefixed (TPM2B_*). The parsers here check every length
against the bytes left, reject trailing bytes, and raise :class:`~floodlight_trust.errors.ParseError`
located at the offset of the offending field. They verify nothing: magic values are recorded, not
judged (a quote with a wrong magic is refused by :mod:`floodlight_trust.evidence.tpm.quote`, with the
signature check beside it). Pure: bytes in, frozen dataclasses out.

Covered: TPMS_ATTEST / TPM2B_ATTEST of type TPM_ST_ATTEST_QUOTE (TPMS_QUOTE_INFO with
TPML_PCR_SELECTION and the PCR digest), TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA), TPMT_PUBLIC /
TPM2B_PUBLIC for RSA and ECC keys (with the object's name), and tpm2-tools' PCR output file
(``tpm2_quote -o``: a little-endian memory dump of TPML_PCR_SELECTION and TPML_DIGEST values).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from floodlight_trust.errors import Location, ParseError

TPM_GENERATED_VALUE = 0xFF544347
MAX_PCRS = 24


class TpmAlg(IntEnum):
    """TPM_ALG_ID values this project meets (TPM 2.0 Part 2, 6.3)."""

    RSA = 0x0001
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    KEYEDHASH = 0x0008
    XOR = 0x000A
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    NULL = 0x0010
    SM3_256 = 0x0012
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CTR = 0x0040
    OFB = 0x0041
    CBC = 0x0042
    CFB = 0x0043
    ECB = 0x0044


class AttestType(IntEnum):
    """TPM_ST values of TPMS_ATTEST.type."""

    ATTEST_NV = 0x8014
    ATTEST_COMMAND_AUDIT = 0x8015
    ATTEST_SESSION_AUDIT = 0x8016
    ATTEST_CERTIFY = 0x8017
    ATTEST_QUOTE = 0x8018
    ATTEST_TIME = 0x8019
    ATTEST_CREATION = 0x801A
    ATTEST_NV_DIGEST = 0x801C


class EccCurve(IntEnum):
    NIST_P192 = 0x0001
    NIST_P224 = 0x0002
    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005
    BN_P256 = 0x0010
    BN_P638 = 0x0011
    SM2_P256 = 0x0020


# Hash algorithms by TPM id: name, digest size, hashlib constructor.
HASH_NAMES: dict[int, str] = {
    TpmAlg.SHA1: "sha1",
    TpmAlg.SHA256: "sha256",
    TpmAlg.SHA384: "sha384",
    TpmAlg.SHA512: "sha512",
    TpmAlg.SM3_256: "sm3-256",
}
HASH_IDS: dict[str, int] = {v: k for k, v in HASH_NAMES.items()}
DIGEST_SIZES: dict[str, int] = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64, "sm3-256": 32}
HASHERS: dict[str, Callable[..., hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def alg_name(value: int) -> str:
    try:
        return TpmAlg(value).name.lower()
    except ValueError:
        return f"0x{value:04x}"


class _Reader:
    """Big-endian reader over bytes; every failure is a ParseError at the field's offset."""

    __slots__ = ("base", "data", "pos", "what")

    def __init__(self, data: bytes, what: str, base: int = 0) -> None:
        self.data = data
        self.pos = 0
        self.what = what
        self.base = base  # offset of data[0] in the caller's input, for locations

    def fail(self, message: str, at: int | None = None) -> ParseError:
        offset = self.base + (self.pos if at is None else at)
        return ParseError(f"{self.what}: {message}", location=Location(offset=offset))

    def take(self, n: int, field: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.fail(f"{field} needs {n} bytes, only {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int(struct.unpack(">H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack(">I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        return int(struct.unpack(">Q", self.take(8, field))[0])

    def tpm2b(self, field: str, limit: int | None = None) -> bytes:
        at = self.pos
        size = self.u16(f"{field} size")
        if limit is not None and size > limit:
            raise self.fail(f"{field} size {size} exceeds the maximum {limit}", at)
        return self.take(size, field)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} trailing bytes after the structure")


# ---------------------------------------------------------------------------------------------
# PCR selections


@dataclass(frozen=True, slots=True)
class PcrSelection:
    """One TPMS_PCR_SELECTION: a bank and the PCRs selected in it (ascending)."""

    bank: str  # hash name, e.g. "sha256"
    pcrs: tuple[int, ...]
    bitmap: bytes  # the pcrSelect octets as the TPM sent them

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.bank, "pcrs": list(self.pcrs), "bitmap": self.bitmap.hex()}


def _pcrs_from_bitmap(bitmap: bytes) -> tuple[int, ...]:
    return tuple(8 * i + bit for i, octet in enumerate(bitmap) for bit in range(8) if octet >> bit & 1)


def _bank(r: _Reader, alg: int, at: int) -> str:
    name = HASH_NAMES.get(alg)
    if name is None:
        raise r.fail(f"unknown PCR bank hash algorithm {alg_name(alg)}", at)
    return name


def _read_selection_list(r: _Reader) -> tuple[PcrSelection, ...]:
    at = r.pos
    count = r.u32("TPML_PCR_SELECTION count")
    if count > 16:  # HASH_COUNT: more banks than any TPM has is corrupt input
        raise r.fail(f"TPML_PCR_SELECTION count {count} exceeds 16", at)
    out = []
    seen: set[str] = set()
    for i in range(count):
        at = r.pos
        bank = _bank(r, r.u16(f"selection {i} hash"), at)
        size = r.u8(f"selection {i} sizeofSelect")
        if size > 8:
            raise r.fail(f"selection {i} sizeofSelect {size} exceeds 8", r.pos - 1)
        bitmap = r.take(size, f"selection {i} pcrSelect")
        if bank in seen:
            raise r.fail(f"bank {bank} selected twice", at)
        seen.add(bank)
        out.append(PcrSelection(bank, _pcrs_from_bitmap(bitmap), bitmap))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# TPMS_ATTEST


@dataclass(frozen=True, slots=True)
class ClockInfo:
    """TPMS_CLOCK_INFO. For keys outside the endorsement and platform hierarchies the TPM
    obfuscates ``reset_count`` and ``restart_count`` (and the firmware version) per key: they are
    then comparable between quotes of the same key only."""

    clock: int  # milliseconds the TPM has been powered, persisted across power cycles
    reset_count: int  # TPM2_Startup(CLEAR) count: a reboot
    restart_count: int  # TPM2_Startup(STATE) after Shutdown(STATE) since the last reset (resume)
    safe: bool  # clock has not been reported lower than before (no unorderly shutdown)


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """TPMS_QUOTE_INFO: the PCRs quoted and the digest of their values."""

    selections: tuple[PcrSelection, ...]
    pcr_digest: bytes


@dataclass(frozen=True, slots=True)
class Attest:
    """A parsed TPMS_ATTEST of type quote; ``raw`` is exactly the bytes the signature covers."""

    raw: bytes
    magic: int
    type: AttestType
    qualified_signer: bytes  # TPM2B_NAME of the signing key
    extra_data: bytes  # qualifying data: the verifier's nonce binding
    clock_info: ClockInfo
    firmware_version: int
    quote: QuoteInfo

    @property
    def magic_ok(self) -> bool:
        return self.magic == TPM_GENERATED_VALUE

    def to_json(self) -> dict[str, Any]:
        c = self.clock_info
        return {
            "magic": f"{self.magic:08x}",
            "magic_ok": self.magic_ok,
            "type": self.type.name,
            "qualified_signer": self.qualified_signer.hex(),
            "extra_data": self.extra_data.hex(),
            "clock": c.clock,
            "reset_count": c.reset_count,
            "restart_count": c.restart_count,
            "safe": c.safe,
            "firmware_version": f"{self.firmware_version:016x}",
            "pcr_selections": [s.to_json() for s in self.quote.selections],
            "pcr_digest": self.quote.pcr_digest.hex(),
            "attest_sha256": hashlib.sha256(self.raw).hexdigest(),
            "attest_length": len(self.raw),
        }


def parse_attest(data: bytes) -> Attest:
    """Parse a TPMS_ATTEST (``tpm2_quote -m``) or a TPM2B_ATTEST (the same with a 2-byte size).

    The form is recognised by the magic at offset 0 or 2; offsets in errors are into ``data``.
    Only quotes are accepted: another attestation type is a ParseError at its offset.
    """
    data = bytes(data)
    base = 0
    if len(data) >= 6 and int.from_bytes(data[:4], "big") != TPM_GENERATED_VALUE:
        size = int.from_bytes(data[:2], "big")
        if int.from_bytes(data[2:6], "big") == TPM_GENERATED_VALUE or size == len(data) - 2:
            if size != len(data) - 2:
                raise ParseError(
                    f"TPM2B_ATTEST: size field says {size} bytes, {len(data) - 2} follow",
                    location=Location(offset=0),
                )
            base = 2
    r = _Reader(data[base:], "TPMS_ATTEST", base)
    magic = r.u32("magic")
    at = r.pos
    type_value = r.u16("type")
    if type_value != AttestType.ATTEST_QUOTE:
        try:
            type_name = f"TPM_ST_{AttestType(type_value).name}"
        except ValueError:
            type_name = "unknown"
        raise r.fail(f"type 0x{type_value:04x} ({type_name}) is not a quote (TPM_ST_ATTEST_QUOTE 0x8018)", at)
    signer = r.tpm2b("qualifiedSigner", 2 + 64)
    extra = r.tpm2b("extraData", 64)
    clock = ClockInfo(
        clock=r.u64("clock"),
        reset_count=r.u32("resetCount"),
        restart_count=r.u32("restartCount"),
        safe=_yes_no(r, "safe"),
    )
    firmware = r.u64("firmwareVersion")
    selections = _read_selection_list(r)
    digest = r.tpm2b("pcrDigest", 64)
    r.end()
    return Attest(
        raw=data[base:],
        magic=magic,
        type=AttestType.ATTEST_QUOTE,
        qualified_signer=signer,
        extra_data=extra,
        clock_info=clock,
        firmware_version=firmware,
        quote=QuoteInfo(selections, digest),
    )


def _yes_no(r: _Reader, field: str) -> bool:
    value = r.u8(field)
    if value > 1:
        raise r.fail(f"{field} is {value}, not YES (1) or NO (0)", r.pos - 1)
    return value == 1


# ---------------------------------------------------------------------------------------------
# TPMT_SIGNATURE


@dataclass(frozen=True, slots=True)
class Signature:
    """TPMT_SIGNATURE: the scheme, its hash, and the signature (RSA octets or ECDSA r, s)."""

    scheme: TpmAlg  # RSASSA, RSAPSS or ECDSA
    hash: str  # hash name
    rsa: bytes = b""
    ecdsa_r: bytes = b""
    ecdsa_s: bytes = b""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheme": self.scheme.name.lower(), "hash": self.hash}
        if self.scheme is TpmAlg.ECDSA:
            out.update(r=self.ecdsa_r.hex(), s=self.ecdsa_s.hex())
        else:
            out.update(signature=self.rsa.hex())
        return out


SIGNATURE_SCHEMES = (TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.ECDSA)


def parse_signature(data: bytes) -> Signature:
    """Parse a TPMT_SIGNATURE (``tpm2_quote -s``) of scheme RSASSA, RSAPSS or ECDSA."""
    r = _Reader(bytes(data), "TPMT_SIGNATURE")
    scheme = r.u16("sigAlg")
    if scheme not in SIGNATURE_SCHEMES:
        raise r.fail(f"signature scheme {alg_name(scheme)} is not supported (rsassa, rsapss or ecdsa)", 0)
    at = r.pos
    hash_id = r.u16("hash")
    name = HASH_NAMES.get(hash_id)
    if name is None or name not in HASHERS:
        raise r.fail(f"signature hash {alg_name(hash_id)} is not supported", at)
    if scheme == TpmAlg.ECDSA:
        sig_r = r.tpm2b("signatureR", 66)
        sig_s = r.tpm2b("signatureS", 66)
        r.end()
        return Signature(TpmAlg(scheme), name, ecdsa_r=sig_r, ecdsa_s=sig_s)
    sig = r.tpm2b("sig", 512)
    r.end()
    return Signature(TpmAlg(scheme), name, rsa=sig)


# ---------------------------------------------------------------------------------------------
# TPMT_PUBLIC / TPM2B_PUBLIC


@dataclass(frozen=True, slots=True)
class SymDef:
    """TPMT_SYM_DEF_OBJECT: the symmetric algorithm of a storage key (e.g. an EK): AES-128-CFB."""

    algorithm: TpmAlg | int
    key_bits: int = 0
    mode: TpmAlg | int = TpmAlg.NULL


@dataclass(frozen=True, slots=True)
class TpmPublic:
    """TPMT_PUBLIC of an RSA or ECC key, with its TPM name (nameAlg || H(TPMT_PUBLIC))."""

    raw: bytes  # the TPMT_PUBLIC bytes (the name covers exactly these)
    type: TpmAlg  # RSA or ECC
    name_alg: str
    object_attributes: int
    auth_policy: bytes
    symmetric: SymDef
    scheme: TpmAlg | int  # NULL when the key may sign with any scheme its type allows
    scheme_hash: str | None
    # RSA
    key_bits: int = 0
    exponent: int = 0
    modulus: bytes = b""
    # ECC
    curve: EccCurve | int = 0
    x: bytes = b""
    y: bytes = b""

    # TPMA_OBJECT bits that matter for an attestation key
    FIXED_TPM = 1 << 1
    FIXED_PARENT = 1 << 4
    SENSITIVE_DATA_ORIGIN = 1 << 5
    RESTRICTED = 1 << 16
    DECRYPT = 1 << 17
    SIGN = 1 << 18

    @property
    def name(self) -> bytes:
        h = HASHERS[self.name_alg]
        return HASH_IDS[self.name_alg].to_bytes(2, "big") + h(self.raw).digest()

    def has(self, attribute: int) -> bool:
        return bool(self.object_attributes & attribute)

    def describe(self) -> str:
        if self.type == TpmAlg.RSA:
            return f"RSA-{self.key_bits} e={self.exponent}"
        try:
            curve = EccCurve(self.curve).name
        except ValueError:
            curve = f"curve 0x{int(self.curve):04x}"
        return f"ECC-{curve}"

    def public_key(self) -> Any:
        """The key as a ``cryptography`` public key (RSA or EC)."""
        from floodlight_trust.evidence.tpm.keys import public_key_of

        return public_key_of(self)


def parse_public(data: bytes) -> TpmPublic:
    """Parse a TPM2B_PUBLIC or a TPMT_PUBLIC (recognised by the size prefix) of an RSA or ECC key."""
    data = bytes(data)
    if (
        len(data) >= 4
        and int.from_bytes(data[:2], "big") == len(data) - 2
        and int.from_bytes(data[2:4], "big")
        in (
            TpmAlg.RSA,
            TpmAlg.ECC,
        )
    ):
        return parse_tpmt_public(data[2:], base=2)
    return parse_tpmt_public(data)


def parse_tpmt_public(data: bytes, *, base: int = 0) -> TpmPublic:
    r = _Reader(bytes(data), "TPMT_PUBLIC", base)
    key_type = r.u16("type")
    if key_type not in (TpmAlg.RSA, TpmAlg.ECC):
        raise r.fail(f"key type {alg_name(key_type)} is not RSA or ECC", 0)
    at = r.pos
    name_alg_id = r.u16("nameAlg")
    name_alg = HASH_NAMES.get(name_alg_id)
    if name_alg is None or name_alg not in HASHERS:
        raise r.fail(f"nameAlg {alg_name(name_alg_id)} is not supported", at)
    attributes = r.u32("objectAttributes")
    policy = r.tpm2b("authPolicy", 64)
    symmetric = _sym_def(r)
    scheme, scheme_hash = _scheme(r)
    if key_type == TpmAlg.RSA:
        at = r.pos
        key_bits = r.u16("keyBits")
        if key_bits not in (1024, 2048, 3072, 4096):
            raise r.fail(f"RSA keyBits {key_bits} is not 1024, 2048, 3072 or 4096", at)
        exponent = r.u32("exponent") or 65537
        at = r.pos
        modulus = r.tpm2b("unique (modulus)", 512)
        if len(modulus) != key_bits // 8:
            raise r.fail(f"modulus has {len(modulus)} bytes, keyBits says {key_bits // 8}", at)
        r.end()
        return TpmPublic(
            raw=r.data, type=TpmAlg.RSA, name_alg=name_alg, object_attributes=attributes, auth_policy=policy,
            symmetric=symmetric, scheme=scheme, scheme_hash=scheme_hash, key_bits=key_bits, exponent=exponent,
            modulus=modulus,
        )  # fmt: skip
    at = r.pos
    curve = r.u16("curveID")
    kdf = r.u16("kdf scheme")
    if kdf != TpmAlg.NULL:
        r.u16("kdf hash")
    x = r.tpm2b("unique x", 66)
    y = r.tpm2b("unique y", 66)
    r.end()
    try:
        curve_id: EccCurve | int = EccCurve(curve)
    except ValueError:
        raise r.fail(f"unknown ECC curve 0x{curve:04x}", at) from None
    return TpmPublic(
        raw=r.data, type=TpmAlg.ECC, name_alg=name_alg, object_attributes=attributes, auth_policy=policy,
        symmetric=symmetric, scheme=scheme, scheme_hash=scheme_hash, curve=curve_id, x=x, y=y,
    )  # fmt: skip


def _sym_def(r: _Reader) -> SymDef:
    alg = r.u16("symmetric algorithm")
    if alg == TpmAlg.NULL:
        return SymDef(TpmAlg.NULL)
    bits = r.u16("symmetric keyBits")
    mode = r.u16("symmetric mode")
    return SymDef(_alg(alg), bits, _alg(mode))


def _scheme(r: _Reader) -> tuple[TpmAlg | int, str | None]:
    scheme = r.u16("scheme")
    if scheme == TpmAlg.NULL:
        return TpmAlg.NULL, None
    at = r.pos
    hash_id = r.u16("scheme hash")
    if scheme == TpmAlg.ECDAA:
        r.u16("ecdaa count")
    name = HASH_NAMES.get(hash_id)
    if name is None:
        raise r.fail(f"scheme hash {alg_name(hash_id)} is not supported", at)
    return _alg(scheme), name


def _alg(value: int) -> TpmAlg | int:
    try:
        return TpmAlg(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------------
# PCR values: tpm2-tools' -o file and JSON


PcrValues = Mapping[str, Mapping[int, bytes]]  # bank -> PCR index -> value

_SELECTION_DUMP = 4 + 16 * 8  # TPML_PCR_SELECTION: count + 16 x (hash u16, size u8, select[4], pad)
_DIGEST_LIST_DUMP = 4 + 8 * (2 + 64)  # TPML_DIGEST: count + 8 x TPM2B_DIGEST(size u16, buffer[64])


def parse_pcr_file(data: bytes, selections: tuple[PcrSelection, ...] | None = None) -> dict[str, dict[int, bytes]]:
    """PCR values from ``tpm2_quote -o``.

    Two forms: ``serialized`` (``-F serialized``, the default of older tpm2-tools: a little-endian
    dump of TPML_PCR_SELECTION, a UINT32 count and that many TPML_DIGEST), recognised by its size;
    and ``values`` (the concatenated digests in selection order), which needs the quote's
    ``selections`` to be split.
    """
    data = bytes(data)
    if len(data) >= _SELECTION_DUMP + 4 and (len(data) - _SELECTION_DUMP - 4) % _DIGEST_LIST_DUMP == 0:
        return _parse_serialized_pcrs(data)
    if selections is None:
        raise ParseError(
            f"PCR file: {len(data)} bytes is not a serialized tpm2-tools PCR file "
            f"({_SELECTION_DUMP + 4} + n x {_DIGEST_LIST_DUMP} bytes)",
            location=Location(offset=0),
            hint="a 'values' PCR file is read against the quote's PCR selection",
        )
    want = sum(DIGEST_SIZES[s.bank] * len(s.pcrs) for s in selections)
    if len(data) != want:
        raise ParseError(
            f"PCR file: {len(data)} bytes, the quote's selection needs {want} bytes of PCR values",
            location=Location(offset=min(len(data), want)),
        )
    out: dict[str, dict[int, bytes]] = {}
    pos = 0
    for s in selections:
        size = DIGEST_SIZES[s.bank]
        for pcr in s.pcrs:
            out.setdefault(s.bank, {})[pcr] = data[pos : pos + size]
            pos += size
    return out


def _parse_serialized_pcrs(data: bytes) -> dict[str, dict[int, bytes]]:
    def fail(message: str, offset: int) -> ParseError:
        return ParseError(f"PCR file: {message}", location=Location(offset=offset))

    count = int.from_bytes(data[0:4], "little")
    if count > 16:
        raise fail(f"selection count {count} exceeds 16", 0)
    wanted: list[tuple[str, int]] = []
    for i in range(count):
        at = 4 + 8 * i
        alg = int.from_bytes(data[at : at + 2], "little")
        bank = HASH_NAMES.get(alg)
        if bank is None:
            raise fail(f"unknown PCR bank hash algorithm {alg_name(alg)}", at)
        size = data[at + 2]
        if size > 4:
            raise fail(f"selection {i} sizeofSelect {size} exceeds 4", at + 2)
        wanted += [(bank, p) for p in _pcrs_from_bitmap(data[at + 3 : at + 3 + size])]
    lists = int.from_bytes(data[_SELECTION_DUMP : _SELECTION_DUMP + 4], "little")
    if _SELECTION_DUMP + 4 + lists * _DIGEST_LIST_DUMP != len(data):
        raise fail(
            f"{lists} digest lists announced, the file holds {(len(data) - _SELECTION_DUMP - 4) // _DIGEST_LIST_DUMP}",
            _SELECTION_DUMP,
        )
    values: list[tuple[int, bytes]] = []
    for j in range(lists):
        at = _SELECTION_DUMP + 4 + j * _DIGEST_LIST_DUMP
        n = int.from_bytes(data[at : at + 4], "little")
        if n > 8:
            raise fail(f"digest list {j} count {n} exceeds 8", at)
        for k in range(n):
            d_at = at + 4 + k * 66
            size = int.from_bytes(data[d_at : d_at + 2], "little")
            if size > 64:
                raise fail(f"digest size {size} exceeds 64", d_at)
            values.append((d_at, data[d_at + 2 : d_at + 2 + size]))
    if len(values) != len(wanted):
        raise fail(f"{len(wanted)} PCRs selected but {len(values)} values present", _SELECTION_DUMP)
    out: dict[str, dict[int, bytes]] = {}
    for (bank, pcr), (at, value) in zip(wanted, values, strict=True):
        if len(value) != DIGEST_SIZES[bank]:
            raise fail(f"{bank} PCR {pcr} value has {len(value)} bytes, not {DIGEST_SIZES[bank]}", at)
        out.setdefault(bank, {})[pcr] = value
    return out


def pcrs_from_json(doc: Any, where: str = "PCR values") -> dict[str, dict[int, bytes]]:
    """``{"sha256": {"10": "<hex>", ...}, ...}`` (the form of ``tpm2_pcrread -o``'s YAML too)."""
    if not isinstance(doc, Mapping):
        raise ParseError(f"{where}: expected an object of banks")
    out: dict[str, dict[int, bytes]] = {}
    for bank, values in doc.items():
        if bank not in DIGEST_SIZES:
            raise ParseError(f"{where}: unknown bank {bank!r}", hint="one of " + ", ".join(DIGEST_SIZES))
        if not isinstance(values, Mapping):
            raise ParseError(f"{where}: bank {bank} must map PCR indexes to hex values")
        for key, value in values.items():
            try:
                pcr = int(key)
            except (TypeError, ValueError):
                raise ParseError(f"{where}: {bank} PCR index {key!r} is not a number") from None
            if not 0 <= pcr < MAX_PCRS:
                raise ParseError(f"{where}: {bank} PCR index {pcr} out of range 0..{MAX_PCRS - 1}")
            if isinstance(value, int):  # tpm2_pcrread YAML gives 0x... integers
                raw = (
                    value.to_bytes(DIGEST_SIZES[bank], "big")
                    if value >= 0 and value.bit_length() <= 8 * DIGEST_SIZES[bank]
                    else b""
                )
            elif isinstance(value, str):
                try:
                    raw = bytes.fromhex(value.lower().removeprefix("0x"))
                except ValueError:
                    raise ParseError(f"{where}: {bank} PCR {pcr} value is not hex") from None
            else:
                raise ParseError(f"{where}: {bank} PCR {pcr} value must be a hex string")
            if len(raw) != DIGEST_SIZES[bank]:
                raise ParseError(f"{where}: {bank} PCR {pcr} value must be {DIGEST_SIZES[bank]} bytes, got {len(raw)}")
            out.setdefault(bank, {})[pcr] = raw
    return out


def pcrs_to_json(values: PcrValues) -> dict[str, dict[str, str]]:
    return {bank: {str(p): v.hex() for p, v in sorted(vals.items())} for bank, vals in values.items()}
