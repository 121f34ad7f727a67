"""SGX quotes: DCAP quote v3 (ECDSA P-256) and EPID quote (``sgx_quote_t``), parsed with byte offsets.

Parsing checks structure only (sizes, versions, key and certification-data types); it verifies no
signature. Every :class:`~floodlight_trust.errors.ParseError` carries the byte offset of the problem.
The PCK certificate's SGX extensions (OID 1.2.840.113741.1.13.1) are decoded here too, with a small
DER reader (:mod:`floodlight_trust.evidence.der`), because they are part of what a quote says about its platform.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from floodlight_trust.claims import EnclaveClaims, EvidenceType, PlatformIdentity, TcbStatus
from floodlight_trust.errors import Location, ParseError
from floodlight_trust.evidence import der
from floodlight_trust.evidence.frozen import builder
from floodlight_trust.evidence.x509_der import sgx_extension

HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
SIGNED_SIZE = HEADER_SIZE + REPORT_BODY_SIZE  # the quote signature covers header + ISV report body
ATT_KEY_ECDSA_P256 = 2
CERT_DATA_PCK_CHAIN = 5
SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _fail(message: str, offset: int) -> ParseError:
    return ParseError(message, location=Location(offset=offset))


@dataclass(frozen=True, slots=True)
class ReportBody:
    """``sgx_report_body_t``: the enclave identity an SGX report (and a quote) carries."""

    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes  # flags (8 bytes LE) || xfrm (8 bytes LE)
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def xfrm(self) -> int:
        return int.from_bytes(self.attributes[8:], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & 0x02)

    @property
    def mode64bit(self) -> bool:
        return bool(self.flags & 0x04)

    @property
    def initted(self) -> bool:
        return bool(self.flags & 0x01)


# sgx_report_body_t in one unpack: cpu_svn, misc_select, (reserved), isv_ext_prod_id, attributes,
# mr_enclave, (reserved), mr_signer, (reserved), config_id, isv_prod_id, isv_svn, config_svn,
# (reserved), isv_family_id, report_data: two per DCAP quote, so one call instead of sixteen.
_REPORT_BODY = struct.Struct("<16sI12x16s16s32s32x32s32x64sHHH42x16s64s")
assert _REPORT_BODY.size == REPORT_BODY_SIZE


_new_report_body = builder(ReportBody)  # frozen.py: built in one call (two per cold DCAP verification)


def parse_report_body(data: bytes | memoryview, offset: int = 0) -> ReportBody:
    """Decode 384 bytes at ``offset``; the caller has checked the bounds."""
    if offset >= 0 and len(data) - offset >= REPORT_BODY_SIZE:
        return _new_report_body(*_REPORT_BODY.unpack_from(data, offset))
    b = bytes(data[offset : offset + REPORT_BODY_SIZE])
    if len(b) != REPORT_BODY_SIZE:
        raise _fail(f"report body needs {REPORT_BODY_SIZE} bytes, only {len(b)} left", offset + len(b))
    return ReportBody(*_REPORT_BODY.unpack_from(b))


_new_claims = builder(EnclaveClaims)  # its fields in order, every one passed


def enclave_claims(
    report: ReportBody,
    *,
    evidence_type: EvidenceType,
    tcb_status: TcbStatus,
    advisory_ids: tuple[str, ...],
    qe_identity_status: TcbStatus | None,
    collateral_issued_at: datetime,
    platform: PlatformIdentity,
    simulated: bool = False,
) -> EnclaveClaims:
    """The claims a *verified* report body supports, in the forms policies see (hex, ints, flags).

    DCAP and IAS verification both end here, so the two kinds of evidence give one claim set.
    """
    return _new_claims(
        evidence_type,
        report.mr_enclave.hex(),
        report.mr_signer.hex(),
        report.isv_prod_id,
        report.isv_svn,
        report.debug,
        report.mode64bit,
        report.attributes.hex(),
        report.misc_select,
        report.config_svn,
        report.config_id.hex(),
        report.isv_ext_prod_id.hex(),
        report.isv_family_id.hex(),
        report.report_data.hex(),
        tcb_status,
        advisory_ids,
        qe_identity_status,
        collateral_issued_at,
        platform,
        simulated,
    )


@dataclass(frozen=True, slots=True)
class QuoteV3:
    """An SGX DCAP quote, version 3, with ECDSA P-256 attestation key and PCK chain (type 5)."""

    raw: bytes
    version: int
    att_key_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    report: ReportBody
    signature: bytes  # r || s, 64 bytes, over raw[:432]
    attestation_key: bytes  # x || y, 64 bytes
    qe_report_raw: bytes  # 384 bytes, signed by the PCK key
    qe_report: ReportBody
    qe_report_signature: bytes  # r || s
    qe_auth_data: bytes
    cert_data_type: int
    cert_data: bytes  # PEM chain: PCK leaf, intermediate CA, root CA

    @property
    def signed_region(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    def pck_chain_pem(self) -> list[bytes]:
        """The PEM blocks of the certification data, leaf first."""
        return split_pem(self.cert_data)


@dataclass(frozen=True, slots=True)
class EpidQuote:
    """An EPID quote (``sgx_quote_t``, version 1 or 2) as sent to IAS, or the 432-byte body IAS returns."""

    raw: bytes
    version: int
    sign_type: int  # 0 unlinkable, 1 linkable
    epid_group_id: bytes  # 4 bytes, little-endian as in the quote
    qe_svn: int
    pce_svn: int
    xeid: int
    basename: bytes
    report: ReportBody
    signature: bytes | None  # None for the IAS-returned body (no signature part)

    @property
    def body(self) -> bytes:
        """The 432 bytes IAS echoes as ``isvEnclaveQuoteBody``."""
        return self.raw[:SIGNED_SIZE]


def split_pem(data: bytes) -> list[bytes]:
    """Every ``-----BEGIN CERTIFICATE-----`` block in ``data``, in order, as bytes."""
    out: list[bytes] = []
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    pos = 0
    while True:
        i = data.find(begin, pos)
        if i < 0:
            return out
        j = data.find(end, i)
        if j < 0:
            raise _fail("unterminated PEM certificate", i)
        pos = j + len(end)
        out.append(data[i:pos] + b"\n")


def parse_quote(data: bytes) -> QuoteV3 | EpidQuote:
    """Parse a DCAP v3 or EPID quote; raise ParseError (with the byte offset) on malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("a quote must be bytes")
    data = bytes(data)
    if len(data) < SIGNED_SIZE:
        raise _fail(f"truncated quote: {len(data)} bytes, a quote has at least {SIGNED_SIZE}", len(data))
    version = _U16.unpack_from(data, 0)[0]
    if version == 3:
        return _parse_v3(data)
    if version in (1, 2):
        return _parse_epid(data, version)
    raise _fail(f"unsupported quote version {version} (expected 3 for DCAP, 1 or 2 for EPID)", 0)


_new_quote = builder(QuoteV3)


def _parse_v3(data: bytes) -> QuoteV3:
    key_type = _U16.unpack_from(data, 2)[0]
    if key_type != ATT_KEY_ECDSA_P256:
        raise _fail(f"unsupported attestation key type {key_type} (only 2 = ECDSA P-256)", 2)
    qe_svn, pce_svn = struct.unpack_from("<HH", data, 8)
    report = parse_report_body(data, HEADER_SIZE)
    pos = SIGNED_SIZE
    if len(data) < pos + 4:
        raise _fail("truncated quote: no signature data length", len(data))
    sig_len = _U32.unpack_from(data, pos)[0]
    pos += 4
    if pos + sig_len != len(data):
        raise _fail(f"signature data length {sig_len} does not match the {len(data) - pos} bytes that follow", pos - 4)
    fixed = 64 + 64 + REPORT_BODY_SIZE + 64 + 2
    if sig_len < fixed:
        raise _fail(f"signature data of {sig_len} bytes is shorter than its fixed part ({fixed})", pos - 4)
    signature = data[pos : pos + 64]
    att_key = data[pos + 64 : pos + 128]
    qe_off = pos + 128
    qe_report_raw = data[qe_off : qe_off + REPORT_BODY_SIZE]
    qe_report = parse_report_body(data, qe_off)
    pos = qe_off + REPORT_BODY_SIZE
    qe_sig = data[pos : pos + 64]
    pos += 64
    auth_len = _U16.unpack_from(data, pos)[0]
    pos += 2
    if pos + auth_len + 6 > len(data):
        raise _fail(f"QE authentication data of {auth_len} bytes runs past the end of the quote", pos - 2)
    auth = data[pos : pos + auth_len]
    pos += auth_len
    cert_type = _U16.unpack_from(data, pos)[0]
    if cert_type != CERT_DATA_PCK_CHAIN:
        raise _fail(f"certification data type {cert_type} is not supported (only 5 = PCK certificate chain)", pos)
    cert_len = _U32.unpack_from(data, pos + 2)[0]
    pos += 6
    if pos + cert_len != len(data):
        raise _fail(f"certification data of {cert_len} bytes does not end at the end of the quote", pos - 4)
    cert_data = data[pos : pos + cert_len]
    return _new_quote(
        data,
        3,
        key_type,
        qe_svn,
        pce_svn,
        data[12:28],
        data[28:48],
        report,
        signature,
        att_key,
        qe_report_raw,
        qe_report,
        qe_sig,
        auth,
        cert_type,
        cert_data,
    )


def _parse_epid(data: bytes, version: int) -> EpidQuote:
    sign_type = _U16.unpack_from(data, 2)[0]
    if sign_type not in (0, 1):
        raise _fail(f"unknown EPID signature type {sign_type} (0 unlinkable, 1 linkable)", 2)
    qe_svn, pce_svn, xeid = struct.unpack_from("<HHI", data, 8)
    report = parse_report_body(data, HEADER_SIZE)
    signature: bytes | None = None
    if len(data) != SIGNED_SIZE:
        if len(data) < SIGNED_SIZE + 4:
            raise _fail("truncated EPID quote: no signature length", len(data))
        sig_len = _U32.unpack_from(data, SIGNED_SIZE)[0]
        if SIGNED_SIZE + 4 + sig_len != len(data):
            raise _fail(
                f"EPID signature length {sig_len} does not match the {len(data) - SIGNED_SIZE - 4} bytes that follow",
                SIGNED_SIZE,
            )
        signature = data[SIGNED_SIZE + 4 :]
    return EpidQuote(
        raw=data,
        version=version,
        sign_type=sign_type,
        epid_group_id=data[4:8],
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        xeid=xeid,
        basename=data[16:48],
        report=report,
        signature=signature,
    )


# ---------------------------------------------------------------------------------------------
# PCK certificate SGX extensions (Intel SGX PCK Certificate and CRL Profile, section 1.5).


@dataclass(frozen=True, slots=True)
class PckExtensions:
    ppid: bytes
    cpu_svn_components: tuple[int, ...]  # the 16 SGX TCB component SVNs
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int


def oid_der(text: str) -> bytes:
    """The DER content bytes of a dotted OID (to compare raw OIDs without decoding each one).

    Also what :mod:`floodlight_trust.sgxsim` encodes when it writes the SGX extension.
    """
    arcs = [int(x) for x in text.split(".")]
    out = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def _pairs(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int, int]]:
    """SEQUENCE OF SEQUENCE { OID, value } -> {raw OID: value TLV}.

    Every cold DCAP verification walks the 23 entries of a PCK certificate's SGX extension, so
    the short-form lengths they all use are read inline; anything else goes through ``der.tlv``.
    """
    out: dict[bytes, tuple[int, int, int]] = {}
    while start < end:
        if end - start >= 4 and data[start] == 0x30 and data[start + 1] < 0x80 and data[start + 2] == 0x06:
            e = start + 2 + data[start + 1]  # SEQUENCE { OID, value }, short-form lengths and tags
            oe = start + 4 + data[start + 3]
            if (
                data[start + 3] < 0x80
                and e <= end
                and oe + 2 <= e
                and data[oe] & 0x1F != 0x1F
                and data[oe + 1] < 0x80
                and oe + 2 + data[oe + 1] == e
            ):
                out[data[start + 4 : oe]] = data[oe], oe + 2, e
                start = e
                continue
        tag, s, e = der.tlv(data, start, end)
        if tag != 0x30:
            raise _fail("SGX extension entry is not a SEQUENCE", s)
        otag, os_, oe = der.tlv(data, s, e)
        if otag != 0x06 or oe >= e:
            raise _fail("SGX extension entry is not (OID, value)", s)
        vtag, vs, ve = der.tlv(data, oe, e)
        if ve != e:
            raise _fail("SGX extension entry is not (OID, value)", s)
        out[data[os_:oe]] = vtag, vs, ve
        start = e
    return out


_BASE = SGX_EXTENSIONS_OID
_OID = {name: oid_der(f"{_BASE}.{name}") for name in ("1", "2", "3", "4", "5")}
_TCB_OID = {i: oid_der(f"{_BASE}.2.{i}") for i in range(1, 19)}
_TCB_COMPONENT_OIDS = tuple(_TCB_OID[i] for i in range(1, 17))


_new_pck_extensions = builder(PckExtensions)


def parse_pck_extensions(ext_value: bytes) -> PckExtensions:
    """Decode the DER value of extension 1.2.840.113741.1.13.1 (in one call of the native
    ``_derwalk`` when it is built; :func:`parse_pck_extensions_py` is its reference, with the same
    values and the same errors)."""
    if sgx_extension is None:
        return parse_pck_extensions_py(ext_value)
    try:
        return _new_pck_extensions(*sgx_extension(ext_value))
    except ValueError as e:
        message, offset, is_der = e.args
        raise (der.DerError(message, offset) if is_der else _fail(message, offset)) from None


def parse_pck_extensions_py(ext_value: bytes) -> PckExtensions:
    """The reference of :func:`parse_pck_extensions`, over :mod:`floodlight_trust.evidence.der`."""
    tag, s, e = der.tlv(ext_value, 0)
    if tag != 0x30:
        raise _fail("SGX extension is not a SEQUENCE", 0)
    top = _pairs(ext_value, s, e)

    def need(oid: bytes, table: dict[bytes, tuple[int, int, int]]) -> bytes:
        if oid not in table:
            raise _fail("SGX extension lacks a required field", 0)
        return ext_value[table[oid][1] : table[oid][2]]

    tcb_tlv = top.get(_OID["2"])
    if tcb_tlv is None:
        raise _fail(f"SGX extension lacks the TCB ({_BASE}.2)", 0)
    tcb = _pairs(ext_value, tcb_tlv[1], tcb_tlv[2])
    try:  # the 16 component SVNs in one comprehension: this runs on every cold DCAP verification
        spans = [tcb[oid] for oid in _TCB_COMPONENT_OIDS]
    except KeyError:
        raise _fail("SGX extension lacks a required field", 0) from None
    comps = tuple([int.from_bytes(ext_value[t[1] : t[2]], "big") for t in spans])
    return PckExtensions(
        ppid=need(_OID["1"], top),
        cpu_svn_components=comps,
        pce_svn=int.from_bytes(need(_TCB_OID[17], tcb), "big"),
        cpu_svn=need(_TCB_OID[18], tcb),
        pce_id=need(_OID["3"], top),
        fmspc=need(_OID["4"], top),
        sgx_type=int.from_bytes(need(_OID["5"], top), "big"),
    )
