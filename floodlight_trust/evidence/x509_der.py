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
- The SGX extension: :func:`floodlight_trust.evidence.sgx_quote.parse_pck_extensions`.
"""

from __future__ import annotations

from collections.abc import Callable
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


_layout: Callable[[bytes, bool], tuple[bytes, bytes | None, bytes, bytes | None, bytes | None] | None]
_profile: Callable[
    [bytes], tuple[tuple[bytes, ...], bool, bytes | None, frozenset[bytes] | None, bytes | None, str | None]
]
# The SGX extension's walk (sgx_quote.parse_pck_extensions; its reference is parse_pck_extensions_py
# there): (ppid, components, pce_svn, cpu_svn, pce_id, fmspc, sgx_type), or ValueError(message,
# offset, is_der_error). None when the module is not built.
sgx_extension: Callable[[bytes], tuple[bytes, tuple[int, ...], int, bytes, bytes, bytes, int]] | None
try:
    from floodlight_trust.evidence import _derwalk
except ImportError:  # not built (an install without a C compiler): the reference, at Python speed
    _layout, _profile, sgx_extension, NATIVE = layout_py, profile_py, None, False
else:
    _layout, _profile, sgx_extension, NATIVE = _derwalk.layout, _derwalk.profile, _derwalk.sgx_extension, True
_new = tuple.__new__  # a NamedTuple from the walk's tuple, without a Python-level __new__


def layout(der: bytes, *, crl: bool) -> Layout | None:
    """The layout of a certificate (or CRL), or None if its structure is not the expected one:
    then names are compared as x509.Name and signatures checked by cryptography's own calls."""
    parts = _layout(der, crl)
    return None if parts is None else _new(Layout, parts)


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
