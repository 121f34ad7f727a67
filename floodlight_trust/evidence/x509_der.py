"""The DER of certificates and CRLs that DCAP verification reads itself, one walk per call.

A cold DCAP verification (every collateral and chain check on every call, as dcap-qvl makes them)
reads, of each certificate and CRL, the signed part, the names (compared as DER bytes, as X.509
path building does), and of each certificate its extensions: basicConstraints, keyUsage,
extKeyUsage, which are critical, and the PCK certificate's SGX extension. Walking that DER element
by element in Python (:mod:`floodlight_trust.evidence.der`) was about a tenth of the whole
verification, so the native module ``_derwalk`` (C, built with the package: setup.py) walks each in
one call. The functions here are its reference, in Python over ``der.tlv``: the same results and
the same errors, word for word, used when the module was not built (``NATIVE`` says which is in
use); tests/evidence/sgx/test_derwalk.py compares the two on real certificates and fuzzed DER.

- :func:`layout`: the parts of a certificate's or CRL's DER (None when its structure is not the
  expected one; the verifier then uses cryptography's own calls).
- :func:`extension_profile`: what the path checks read from a certificate's extensions.
- :func:`certificate_fields`: a certificate's serial number, validity and signature value
  (cryptography's accessors for them, each a call into its parse, were a third of loading one).
- The SGX extension: :func:`floodlight_trust.evidence.sgx_quote.parse_pck_extensions`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.der import DerError, tlv

SGX_EXTENSION_OID_DER = bytes.fromhex("2a864886f84d010d01")  # 1.2.840.113741.1.13.1
KEY_USAGE, BASIC_CONSTRAINTS, EXT_KEY_USAGE = b"\x55\x1d\x0f", b"\x55\x1d\x13", b"\x55\x1d\x25"


class Layout(NamedTuple):
    """Parts of a certificate's or CRL's DER, sliced from its encoding (never re-encoded)."""

    tbs: bytes  # the signed tbsCertificate / tbsCertList element
    algorithm: bytes | None  # the signature AlgorithmIdentifier, None if inner and outer differ
    issuer: bytes  # the issuer Name element
    subject: bytes | None  # the subject Name element (None for a CRL)
    extensions: bytes | None  # a certificate's Extensions contents (None: none, or a CRL)


class ExtensionProfile(NamedTuple):
    """What the path checks read from a certificate's Extensions contents."""

    critical: tuple[bytes, ...]  # OIDs (content bytes) of the extensions marked critical, in order
    ca: bool  # basicConstraints cA (absent: not a CA)
    key_usage: bytes | None  # the keyUsage BIT STRING contents (unused-bits byte first), None if absent
    eku: frozenset[bytes] | None  # extKeyUsage purposes (OID content bytes), None if absent
    sgx: bytes | None  # the SGX extension's value (PCK certificates)
    # A malformed basicConstraints / keyUsage / extKeyUsage (their message), raised by the caller
    # after its check of critical extensions, in the order the checks have always run.
    deferred: str | None


_NO_EXTENSIONS = ExtensionProfile((), False, None, None, None, None)


class CertificateFields(NamedTuple):
    """What a verifier reads of a certificate besides its layout, sliced from its DER."""

    serial: int  # serialNumber
    not_before: datetime  # validity, aware UTC
    not_after: datetime
    signature: bytes  # the signatureValue BIT STRING's bytes (a DER ECDSA-Sig-Value for ECDSA)


def layout_py(der: bytes, crl: bool) -> tuple[bytes, bytes | None, bytes, bytes | None, bytes | None] | None:
    """The reference of ``_derwalk.layout``: :class:`Layout`'s fields, or None."""
    try:
        _, pos, _ = tlv(der, 0)  # Certificate / CertificateList
        _, start, tbs_end = tlv(der, pos)  # tbsCertificate / tbsCertList
        _, _, alg_end = tlv(der, tbs_end)  # the outer signatureAlgorithm
        outer = der[tbs_end:alg_end]
        tag, _, end = tlv(der, start, tbs_end)
        if tag == (0x02 if crl else 0xA0):  # optional version
            start = end
        if not crl:
            _, _, start = tlv(der, start, tbs_end)  # serialNumber
        _, _, end = tlv(der, start, tbs_end)  # the inner signature algorithm
        algorithm = outer if der[start:end] == outer else None
        tag, _, start = tlv(der, end, tbs_end)
        issuer = der[end:start]
        if tag != 0x30:
            return None
        if crl:
            return der[pos:tbs_end], algorithm, issuer, None, None
        _, _, end = tlv(der, start, tbs_end)  # validity
        tag, _, pos_spki = tlv(der, end, tbs_end)
        subject = der[end:pos_spki]
        if tag != 0x30:
            return None
        _, _, at = tlv(der, pos_spki, tbs_end)  # subjectPublicKeyInfo
        extensions = None
        while at < tbs_end:  # [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions
            tag, inner, end = tlv(der, at, tbs_end)
            if tag == 0xA3:
                tag, s, e = tlv(der, inner, end)
                if tag != 0x30 or e != end:
                    return None
                extensions = der[s:e]
            at = end
        return der[pos:tbs_end], algorithm, issuer, subject, extensions
    except DerError:
        return None


def profile_py(
    extensions: bytes,
) -> tuple[tuple[bytes, ...], bool, bytes | None, frozenset[bytes] | None, bytes | None, str | None]:
    """The reference of ``_derwalk.profile``: :class:`ExtensionProfile`'s fields.

    ``ValueError(message, None)`` for a malformed extension list, ``ValueError(None, oid)`` for an
    extension listed twice (RFC 5280 4.2; cryptography and webpki refuse it too)."""
    found: dict[bytes, tuple[bool, bytes]] = {}
    at = 0
    while at < len(extensions):
        try:
            tag, s, end = tlv(extensions, at)  # Extension ::= SEQUENCE {
            otag, os_, oe = tlv(extensions, s, end)  # extnID OID,
            vtag, vs, ve = tlv(extensions, oe, end)
            critical = False
            if vtag == 0x01:  # critical BOOLEAN DEFAULT FALSE,
                critical = ve == vs + 1 and extensions[vs] != 0
                vtag, vs, ve = tlv(extensions, ve, end)
        except DerError as err:
            raise ValueError(f"malformed extensions: {err.message}", None) from None
        if tag != 0x30 or otag != 0x06 or vtag != 0x04 or ve != end:  # extnValue OCTET STRING }
            raise ValueError(f"malformed extension at offset {at} of its extensions", None)
        oid = extensions[os_:oe]
        if oid in found:
            raise ValueError(None, oid)
        found[oid] = (critical, extensions[vs:ve])
        at = end
    critical_oids = tuple(oid for oid, (critical, _) in found.items() if critical)
    sgx = found.get(SGX_EXTENSION_OID_DER)
    sgx_value = sgx[1] if sgx is not None else None
    try:
        ca = False
        bc = found.get(BASIC_CONSTRAINTS)
        if bc is not None:  # BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL }
            tag, s, e = tlv(bc[1], 0)
            if tag != 0x30 or e != len(bc[1]):
                raise DerError("basicConstraints is not one SEQUENCE", 0)
            if s < e and bc[1][s] == 0x01:
                _, bs, be = tlv(bc[1], s, e)
                ca = be == bs + 1 and bc[1][bs] != 0
        key_usage = None
        ku = found.get(KEY_USAGE)
        if ku is not None:
            tag, s, e = tlv(ku[1], 0)
            if tag != 0x03 or e != len(ku[1]) or e == s:
                raise DerError("keyUsage is not one BIT STRING", 0)
            key_usage = ku[1][s:e]
        eku = None
        ext_ku = found.get(EXT_KEY_USAGE)
        if ext_ku is not None:
            tag, s, e = tlv(ext_ku[1], 0)
            if tag != 0x30 or e != len(ext_ku[1]):
                raise DerError("extKeyUsage is not one SEQUENCE", 0)
            purposes = set()
            while s < e:
                ptag, ps, pe = tlv(ext_ku[1], s, e)
                if ptag != 0x06:
                    raise DerError("extKeyUsage holds a non-OID", s)
                purposes.add(ext_ku[1][ps:pe])
                s = pe
            eku = frozenset(purposes)
    except DerError as err:
        return critical_oids, False, None, None, sgx_value, err.message
    return critical_oids, ca, key_usage, eku, sgx_value, None


def _der_time(der: bytes, tag: int, start: int, end: int) -> datetime | None:
    """A UTCTime (RFC 5280: YYMMDDHHMMSSZ, 50-99 are 19xx) or GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    text = der[start:end]
    if tag == 0x17 and len(text) == 13 and text[12:] == b"Z" and text[:12].isdigit():
        year, rest = int(text[:2]), text[2:12]
        year += 1900 if year >= 50 else 2000
    elif tag == 0x18 and len(text) == 15 and text[14:] == b"Z" and text[:14].isdigit():
        year, rest = int(text[:4]), text[4:14]
    else:
        return None
    try:
        return datetime(year, int(rest[:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:]), tzinfo=UTC)
    except ValueError:  # month 13, February 30
        return None


def certificate_fields_py(der: bytes) -> tuple[int, datetime, datetime, bytes] | None:
    """The reference of ``_derwalk.certificate_fields``: :class:`CertificateFields`' fields, or
    None when they are not where and what DER puts them (a UTCTime / GeneralizedTime of whole
    seconds in Z, a non-empty INTEGER, a BIT STRING without unused bits)."""
    try:
        _, pos, _ = tlv(der, 0)
        _, start, tbs_end = tlv(der, pos)
        _, _, alg_end = tlv(der, tbs_end)
        tag, bs, be = tlv(der, alg_end)
        if tag != 0x03 or be == bs or der[bs] != 0:
            return None
        tag, _, end = tlv(der, start, tbs_end)
        if tag == 0xA0:  # optional version
            start = end
        tag, ss, se = tlv(der, start, tbs_end)
        if tag != 0x02 or se == ss:
            return None
        _, _, end = tlv(der, se, tbs_end)  # the inner signature algorithm
        _, _, end = tlv(der, end, tbs_end)  # issuer
        tag, vs, ve = tlv(der, end, tbs_end)
        if tag != 0x30:
            return None
        tag1, s1, e1 = tlv(der, vs, ve)
        tag2, s2, e2 = tlv(der, e1, ve)
        if e2 != ve:
            return None
    except DerError:
        return None
    not_before, not_after = _der_time(der, tag1, s1, e1), _der_time(der, tag2, s2, e2)
    if not_before is None or not_after is None:
        return None
    return int.from_bytes(der[ss:se], "big", signed=True), not_before, not_after, der[bs + 1 : be]


class CrlFields(NamedTuple):
    """A CRL read strictly from its DER (:func:`crl_fields`): what a verifier reads of it."""

    tbs: bytes  # the signed tbsCertList element
    algorithm: bytes  # the signature AlgorithmIdentifier element (inner and outer, the same bytes)
    signature: bytes  # the signatureValue BIT STRING's bytes
    this_update: datetime  # aware UTC
    next_update: datetime
    revoked: frozenset[int]  # the serial numbers of revokedCertificates


class _NotStrict(Exception):
    """The CRL is not in the one form the strict walk reads."""


def _strict_tlv(d: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, contents start, contents end) of the element at ``pos`` in ``d[:end]``, in DER's
    shortest form: one tag byte, no indefinite length, no long form below 128, no leading zero
    length byte, at most 3 length bytes. :class:`_NotStrict` otherwise."""
    if pos + 2 > end or d[pos] & 0x1F == 0x1F:
        raise _NotStrict
    first, at = d[pos + 1], pos + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 3 or at + n > end or d[at] == 0:
            raise _NotStrict
        length = int.from_bytes(d[at : at + n], "big")
        if length < (0x80, 0x100, 0x10000)[n - 1]:
            raise _NotStrict
        at += n
    if length > end - at:
        raise _NotStrict
    return d[pos], at, at + length


def _strict_unsigned(d: bytes, tag: int, s: int, e: int) -> bool:
    """A non-negative INTEGER in its shortest form."""
    return tag == 0x02 and e > s and not d[s] & 0x80 and (e - s == 1 or d[s] != 0 or bool(d[s + 1] & 0x80))


def _strict_utc_time(d: bytes, tag: int, s: int, e: int) -> datetime:
    value = _der_time(d, tag, s, e) if tag == 0x17 else None
    if value is None:
        raise _NotStrict
    return value


_ECDSA_ALGORITHMS = frozenset(bytes.fromhex("300a06082a8648ce3d0403") + bytes([n]) for n in (2, 3, 4))
_CRL_NUMBER, _AKI = b"\x06\x03\x55\x1d\x14", b"\x06\x03\x55\x1d\x23"


def _crl_extensions(d: bytes, tag: int, s: int, e: int) -> None:
    """The CRL's extensions: only CRL Number (a non-negative INTEGER) and Authority Key Identifier
    (a keyIdentifier alone), each at most once, not critical or critical TRUE. _NotStrict else."""
    ltag, at, end = _strict_tlv(d, s, e)
    if tag != 0xA0 or ltag != 0x30 or end != e or at == end:
        raise _NotStrict
    seen: set[bytes] = set()
    while at < end:
        etag, es, ee = _strict_tlv(d, at, end)
        _, _, oe = _strict_tlv(d, es, ee)
        vtag, vs, ve = _strict_tlv(d, oe, ee)
        if vtag == 0x01:  # critical: only TRUE is DER (FALSE, the default, is left out)
            if ve - vs != 1 or d[vs] != 0xFF:
                raise _NotStrict
            vtag, vs, ve = _strict_tlv(d, ve, ee)
        if etag != 0x30 or vtag != 0x04 or ve != ee:
            raise _NotStrict
        itag, is_, ie = _strict_tlv(d, vs, ve)
        oid = d[es:oe]
        if ie != ve or oid in seen or oid not in (_CRL_NUMBER, _AKI):
            raise _NotStrict
        seen.add(oid)
        if oid == _CRL_NUMBER and not _strict_unsigned(d, itag, is_, ie):
            raise _NotStrict
        if oid == _AKI:
            ktag, ks, ke = _strict_tlv(d, is_, ie)
            if itag != 0x30 or ktag != 0x80 or ke != ie or ks == ke:
                raise _NotStrict
        at = ee


def crl_fields_py(der: bytes, issuer: bytes) -> tuple[bytes, bytes, bytes, datetime, datetime, frozenset[int]] | None:
    """The reference of ``_derwalk.crl_fields``: :class:`CrlFields`' fields, or None when the CRL is
    not in the one form read here (see :func:`crl_fields`)."""
    try:
        tag, s, n = _strict_tlv(der, 0, len(der))
        if tag != 0x30 or n != len(der):
            return None
        tag, ts, te = _strict_tlv(der, s, n)
        vtag, vs, ve = _strict_tlv(der, ts, te)
        if tag != 0x30 or vtag != 0x02 or der[vs:ve] != b"\x01":  # version v2
            return None
        _, _, ae = _strict_tlv(der, ve, te)
        algorithm = der[ve:ae]
        if algorithm not in _ECDSA_ALGORITHMS:
            return None
        _, _, ie = _strict_tlv(der, ae, te)
        if der[ae:ie] != issuer:
            return None
        tag1, s1, e1 = _strict_tlv(der, ie, te)
        tag2, s2, e2 = _strict_tlv(der, e1, te)
        this_update, next_update = _strict_utc_time(der, tag1, s1, e1), _strict_utc_time(der, tag2, s2, e2)
        at = e2
        revoked: set[int] = set()
        if at < te and der[at] == 0x30:  # revokedCertificates, not empty; entries without extensions
            _, ls, le = _strict_tlv(der, at, te)
            if ls == le:
                return None
            while ls < le:
                etag, es, ee = _strict_tlv(der, ls, le)
                stag, ss, se = _strict_tlv(der, es, ee)
                wtag, ws, we = _strict_tlv(der, se, ee)
                if etag != 0x30 or not _strict_unsigned(der, stag, ss, se) or der[ss:se] == b"\x00" or we != ee:
                    return None  # a serial number 0: cryptography warns it will refuse it
                _strict_utc_time(der, wtag, ws, we)
                revoked.add(int.from_bytes(der[ss:se], "big"))
                ls = ee
            at = le
        if at < te:  # crlExtensions, the last element
            xtag, xs, xe = _strict_tlv(der, at, te)
            if xe != te:
                return None
            _crl_extensions(der, xtag, xs, xe)
        _, _, oe = _strict_tlv(der, te, n)
        if der[te:oe] != algorithm:
            return None
        btag, bs, be = _strict_tlv(der, oe, n)
        if btag != 0x03 or be != n or be == bs or der[bs] != 0:
            return None
    except _NotStrict:
        return None
    return der[s:te], algorithm, der[bs + 1 : be], this_update, next_update, frozenset(revoked)


_layout: Callable[[bytes, bool], tuple[bytes, bytes | None, bytes, bytes | None, bytes | None] | None]
_profile: Callable[
    [bytes], tuple[tuple[bytes, ...], bool, bytes | None, frozenset[bytes] | None, bytes | None, str | None]
]
_fields: Callable[[bytes], tuple[int, datetime, datetime, bytes] | None]
_crl_fields: Callable[[bytes, bytes], tuple[bytes, bytes, bytes, datetime, datetime, frozenset[int]] | None]
# The SGX extension's walk (sgx_quote.parse_pck_extensions; its reference is parse_pck_extensions_py
# there): (ppid, components, pce_svn, cpu_svn, pce_id, fmspc, sgx_type), or ValueError(message,
# offset, is_der_error). None when the module is not built.
sgx_extension: Callable[[bytes], tuple[bytes, tuple[int, ...], int, bytes, bytes, bytes, int]] | None
try:
    from floodlight_trust.evidence import _derwalk
except ImportError:  # not built (an install without a C compiler): the reference, at Python speed
    _layout, _profile, _fields, sgx_extension, NATIVE = layout_py, profile_py, certificate_fields_py, None, False
    _crl_fields = crl_fields_py
else:
    _layout, _profile, _fields = _derwalk.layout, _derwalk.profile, _derwalk.certificate_fields
    _crl_fields, sgx_extension, NATIVE = _derwalk.crl_fields, _derwalk.sgx_extension, True
_new = tuple.__new__  # a NamedTuple from the walk's tuple, without a Python-level __new__


def layout(der: bytes, *, crl: bool) -> Layout | None:
    """The layout of a certificate (or CRL), or None if its structure is not the expected one:
    then names are compared as x509.Name and signatures checked by cryptography's own calls."""
    parts = _layout(der, crl)
    return None if parts is None else _new(Layout, parts)


def certificate_fields(der: bytes) -> CertificateFields | None:
    """A certificate's serial number, validity and signature value, or None when they are not
    where and what DER puts them (then the caller reads them with cryptography)."""
    fields = _fields(der)
    return None if fields is None else _new(CertificateFields, fields)


def crl_fields(der: bytes, issuer: bytes) -> CrlFields | None:
    """The CRL ``der`` read strictly, or None: then the caller reads it with cryptography, which
    decides whether it is valid (and raises what it raises for a malformed one).

    Read only in the form Intel's PCS publishes, each part in DER's shortest form: a v2 CRL signed
    with ECDSA (SHA-256/384/512, the same algorithm inside and outside), whose issuer is ``issuer``
    byte for byte (a Name cryptography has already read, in the issuing certificate), UTCTime
    thisUpdate and nextUpdate, revoked entries (if any) of a positive serial number and a
    UTCTime without entry extensions, and extensions (if any) CRL Number and Authority Key
    Identifier only (a keyIdentifier alone), each once. Whatever this walk gives, cryptography's
    parse gives too (tests/evidence/sgx/test_derwalk.py holds the two to it on the real CRLs and
    on damaged and hand-built ones)."""
    fields = _crl_fields(der, issuer)
    return None if fields is None else _new(CrlFields, fields)


def extension_profile(extensions: bytes | None, what: str, oid_text: Callable[[bytes], str]) -> ExtensionProfile:
    """The profile of a certificate's Extensions contents (``None``: it has none). ParseError
    naming ``what`` when the list is malformed or names an extension twice (rendered with
    ``oid_text``); a malformed value of a known extension is left in ``deferred``."""
    if extensions is None:
        return _NO_EXTENSIONS
    try:
        return _new(ExtensionProfile, _profile(extensions))
    except ValueError as e:
        message, oid = e.args
        if message is None:
            name = "the SGX extension" if oid == SGX_EXTENSION_OID_DER else f"extension {oid_text(oid)}"
            raise ParseError(f"{what}: {name} appears twice") from None
        raise ParseError(f"{what}: {message}") from None
