"""DCAP collateral: TCB info, QE identity, CRLs and their issuer chains, as Intel's PCS publishes them.

Collateral is data; :mod:`floodlight_trust.evidence.dcap` verifies it. The signed JSON bodies are kept
as the exact bytes that were signed (Intel signs the ``"tcbInfo"`` / ``"enclaveIdentity"`` value as it
appears in the response), so nothing here ever re-serialises them. Sources: dcap-qvl's collateral JSON
(hex CRLs, PEM chains), or the files of a directory of PCS responses and certificates/CRLs (read by
:mod:`floodlight_trust.clients.collateral_files`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from floodlight_trust.clock import parse_time
from floodlight_trust.errors import InputError, Location, ParseError
from floodlight_trust.evidence.frozen import builder


@dataclass(frozen=True)
class Collateral:
    """Everything needed besides the quote and the trust anchor to verify a DCAP quote."""

    tcb_info: bytes  # exact signed JSON bytes of the "tcbInfo" value
    tcb_info_signature: bytes  # raw r || s (64 bytes)
    tcb_info_issuer_chain: bytes  # PEM: TCB signing certificate(s), root
    qe_identity: bytes  # exact signed JSON bytes of the "enclaveIdentity" value
    qe_identity_signature: bytes
    qe_identity_issuer_chain: bytes  # PEM
    root_ca_crl: bytes  # DER
    pck_crl: bytes  # DER
    pck_crl_issuer_chain: bytes  # PEM: PCK Processor/Platform CA, root

    @cached_property
    def content(self) -> tuple[bytes, ...]:
        """Every field, in order: the key of the verified-collateral cache. A dict finds it by the
        bytes' own hashes and confirms a hit by comparing the bytes: exact, and half the CPU of
        SHA-256 over the 7-12 kB of a collateral (every enrollment parses its collateral anew)."""
        return (
            self.tcb_info,
            self.tcb_info_signature,
            self.tcb_info_issuer_chain,
            self.qe_identity,
            self.qe_identity_signature,
            self.qe_identity_issuer_chain,
            self.root_ca_crl,
            self.pck_crl,
            self.pck_crl_issuer_chain,
        )


class TcbLevel(NamedTuple):  # a dozen per TCB info, each cold verification: a tuple is built ~4x faster
    components: tuple[int, ...]  # 16 SGX TCB component SVNs
    pce_svn: int
    status: str
    advisory_ids: tuple[str, ...]
    tcb_date: str | None


@dataclass(frozen=True, slots=True)
class TcbInfo:
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    levels: tuple[TcbLevel, ...]


class QeTcbLevel(NamedTuple):
    isv_svn: int
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QeIdentity:
    id: str
    issue_date: datetime
    next_update: datetime
    misc_select: int
    misc_select_mask: int
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    levels: tuple[QeTcbLevel, ...]


_new_tcb_info, _new_qe_identity = builder(TcbInfo), builder(QeIdentity)  # frozen.py: built in one call


def _json_obj(raw: bytes, what: str, *, fast: bool = False) -> dict[str, Any]:
    """The JSON object ``raw``. ``fast``: read by orjson (~3x cheaper than json.loads; this runs on
    every cold verification), any refusal a ParseError; else by ``json.loads``, the reference.
    orjson refuses what json.loads reads (NaN, lone surrogates) and reads integers beyond 64 bits
    as floats, so :func:`_parsed` parses again the json.loads way whenever the fast way fails."""
    if fast:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ParseError(f"{what} is not valid JSON: {e}") from None
    else:
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ParseError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not a JSON object")
    return value


_Doc = TypeVar("_Doc")


def _parsed(raw: bytes, what: str, decode: Callable[[dict[str, Any]], _Doc]) -> _Doc:
    """``decode`` of the JSON object ``raw``: of orjson's reading when that decodes, else of
    json.loads' (its value or its ParseError). The two readings differ only where orjson refuses
    the text or gives a float for an integer; every field ``decode`` keeps is type-checked (an
    int, a string, a list of strings), so a float where json.loads has an int fails the fast way
    and the answer is json.loads'."""
    try:
        return decode(_json_obj(raw, what, fast=True))
    except ParseError:
        return decode(_json_obj(raw, what))


def _field(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = d.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ParseError(f"{what}: field {key!r} is missing or not a {getattr(kind, '__name__', 'value')}")
    return value


def _hexfield(d: Mapping[str, Any], key: str, what: str) -> bytes:
    try:
        return bytes.fromhex(_field(d, key, str, what))
    except ValueError:
        raise ParseError(f"{what}: field {key!r} is not hex") from None


def _time(d: Mapping[str, Any], key: str, what: str) -> datetime:
    try:
        return parse_time(_field(d, key, str, what), what=f"{what} {key}")
    except InputError as e:
        raise ParseError(e.message) from None


def _advisories(ids: Any) -> tuple[str, ...]:
    """A level's ``advisoryIDs`` (a non-empty JSON value): a list of strings."""
    if type(ids) is list:
        advisories = tuple(ids)
        try:
            "".join(advisories)  # a TypeError unless every item is a str (in C, no Python loop)
        except TypeError:
            pass
        else:
            return advisories
    raise ParseError(f"advisoryIDs is not a list of strings: {str(ids)[:40]!r}")


_JSON_INTS = frozenset((int, bool))  # the types json.loads gives that isinstance(v, int) accepts
_INT_ONLY = frozenset((int,))
_SVN = itemgetter("svn")
_V2_COMPONENTS = tuple(f"sgxtcbcomp{n:02d}svn" for n in range(1, 17))


def _tcb_levels_py(levels: list[Any], v3: bool) -> tuple[TcbLevel, ...]:
    """The TCB levels of a decoded ``tcbLevels`` list, every one checked: the reference of the
    native ``_tcblevels.tcb_levels`` (the same levels, the same first error), used when it is not
    built. This runs on every cold verification: types are checked inline and a level's location
    text is built only for an error."""
    what = "TCB info"
    out: list[TcbLevel] = []
    append = out.append
    for i, lv in enumerate(levels):
        tcb = lv.get("tcb") if type(lv) is dict else None
        if type(tcb) is not dict:
            raise ParseError(f"{what} tcbLevels[{i}]: missing 'tcb'")
        if v3:
            comps_raw = tcb.get("sgxtcbcomponents")
            if type(comps_raw) is not list:
                raise ParseError(f"{what} tcbLevels[{i}]: field 'sgxtcbcomponents' is missing or not a list")
            try:  # JSON values: c["svn"] succeeds exactly when c is an object with an svn
                svns = list(map(_SVN, comps_raw))
            except (TypeError, KeyError):
                svns = []
            types = set(map(type, svns))
            if len(svns) != 16 or not types <= _JSON_INTS:
                raise ParseError(f"{what} tcbLevels[{i}]: sgxtcbcomponents must be 16 objects with an integer svn")
            comps = tuple(svns) if types == _INT_ONLY else tuple(map(int, svns))  # bools become ints
        else:
            comps = tuple(int(_field(tcb, key, int, f"{what} tcbLevels[{i}]")) for key in _V2_COMPONENTS)
        status = lv.get("tcbStatus") or lv.get("status")
        if type(status) is not str:
            raise ParseError(f"{what} tcbLevels[{i}]: missing tcbStatus")
        pce_svn = tcb.get("pcesvn")
        if type(pce_svn) is not int:
            raise ParseError(f"{what} tcbLevels[{i}]: field 'pcesvn' is missing or not a int")
        ids, date = lv.get("advisoryIDs"), lv.get("tcbDate")
        advisories = _advisories(ids) if ids else ()
        if date is not None and type(date) is not str:
            raise ParseError(f"{what} tcbLevels[{i}]: field 'tcbDate' is not a string")
        append(TcbLevel(comps, pce_svn, status, advisories, date))
    return tuple(out)


def _tcb_levels_native(levels: list[Any], v3: bool) -> tuple[TcbLevel, ...]:
    try:
        return _tcblevels.tcb_levels(levels, v3, TcbLevel)
    except ValueError as e:
        raise ParseError(str(e)) from None


def _qe_levels_py(levels: list[Any]) -> tuple[QeTcbLevel, ...]:
    """The levels of a decoded QE identity ``tcbLevels`` list, every one checked: the reference of
    the native ``_tcblevels.qe_levels`` (the same levels, the same first error)."""
    what = "QE identity"
    out = []
    for i, lv in enumerate(levels):
        tcb = lv.get("tcb") if type(lv) is dict else None
        if type(tcb) is not dict:
            raise ParseError(f"{what} tcbLevels[{i}]: missing 'tcb'")
        isv_svn, status = tcb.get("isvsvn"), lv.get("tcbStatus")
        if type(isv_svn) is not int:
            raise ParseError(f"{what} tcbLevels[{i}]: field 'isvsvn' is missing or not a int")
        if type(status) is not str:
            raise ParseError(f"{what} tcbLevels[{i}]: field 'tcbStatus' is missing or not a str")
        ids = lv.get("advisoryIDs")
        out.append(QeTcbLevel(isv_svn, status, _advisories(ids) if ids else ()))
    return tuple(out)


def _qe_levels_native(levels: list[Any]) -> tuple[QeTcbLevel, ...]:
    try:
        return _tcblevels.qe_levels(levels, QeTcbLevel)
    except ValueError as e:
        raise ParseError(str(e)) from None


_tcb_levels: Callable[[list[Any], bool], tuple[TcbLevel, ...]]
_qe_levels: Callable[[list[Any]], tuple[QeTcbLevel, ...]]
try:
    from floodlight_trust.evidence import _tcblevels
except ImportError:  # not built (an install without a C compiler): the references, at Python speed
    _tcb_levels, _qe_levels, TCB_LEVELS_NATIVE = _tcb_levels_py, _qe_levels_py, False
else:
    _tcb_levels, _qe_levels, TCB_LEVELS_NATIVE = _tcb_levels_native, _qe_levels_native, True


def parse_tcb_info(raw: bytes) -> TcbInfo:
    """Decode the exact ``tcbInfo`` JSON value (versions 2 and 3, SGX).

    Every level is checked (a malformed one anywhere is a :class:`ParseError` naming it). This runs
    on every cold verification, so the loop checks JSON types inline and builds a level's location
    text only for an error; tests/evidence/sgx/test_collateral_parsers.py holds it to the plain
    reference parser on the real collateral and on fuzzed input.
    """
    return _parsed(raw, "TCB info", _tcb_info)


def _tcb_info(d: dict[str, Any]) -> TcbInfo:
    what = "TCB info"
    version = _field(d, "version", int, what)
    if d.get("id", "SGX") != "SGX":
        raise ParseError(f"{what} is for {d.get('id')!r}, not SGX")
    levels = _tcb_levels(_field(d, "tcbLevels", list, what), version >= 3)
    return _new_tcb_info(  # TcbInfo's fields in order (the checks run in that order, as always)
        version,
        _time(d, "issueDate", what),
        _time(d, "nextUpdate", what),
        _hexfield(d, "fmspc", what),
        _hexfield(d, "pceId", what),
        levels,
    )


def parse_qe_identity(raw: bytes) -> QeIdentity:
    """Decode the exact ``enclaveIdentity`` JSON value (version 2); checked as :func:`parse_tcb_info`."""
    return _parsed(raw, "QE identity", _qe_identity)


def _qe_identity(d: dict[str, Any]) -> QeIdentity:
    what = "QE identity"
    levels = _qe_levels(_field(d, "tcbLevels", list, what))
    ident = d.get("id", "QE")
    if type(ident) is not str:
        raise ParseError(f"{what}: field 'id' is not a string")
    return _new_qe_identity(  # QeIdentity's fields in order (the checks run in that order, as always)
        ident,
        _time(d, "issueDate", what),
        _time(d, "nextUpdate", what),
        int.from_bytes(_hexfield(d, "miscselect", what), "big"),
        int.from_bytes(_hexfield(d, "miscselectMask", what), "big"),
        _hexfield(d, "attributes", what),
        _hexfield(d, "attributesMask", what),
        _hexfield(d, "mrsigner", what),
        _field(d, "isvprodid", int, what),
        levels,
    )


def split_signed_json(text: bytes, key: str, what: str) -> tuple[bytes, bytes]:
    """From a PCS response ``{"<key>": {...}, "signature": "hex"}`` return the exact bytes of the
    ``key`` value and the raw signature. The value is sliced from the text, never re-serialised."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{what} is not UTF-8", location=Location(offset=e.start)) from None
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int, Any]] = {}

    def skip(i: int) -> int:
        while i < len(s) and s[i] in " \t\r\n":
            i += 1
        return i

    try:
        i = skip(0)
        if s[i : i + 1] != "{":
            raise ValueError("not an object")
        i = skip(i + 1)
        while s[i : i + 1] != "}":
            name, i = decoder.raw_decode(s, i)
            i = skip(i)
            if s[i : i + 1] != ":":
                raise ValueError("expected ':'")
            i = skip(i + 1)
            value, end = decoder.raw_decode(s, i)
            spans[name] = (i, end, value)
            i = skip(end)
            if s[i : i + 1] == ",":
                i = skip(i + 1)
            elif s[i : i + 1] != "}":
                raise ValueError("expected ',' or '}'")
    except (ValueError, IndexError) as e:
        raise ParseError(f"{what} is not a valid JSON object: {e}") from None
    if key not in spans or "signature" not in spans:
        raise ParseError(f"{what} lacks {key!r} or 'signature'")
    start, end, _ = spans[key]
    sig = spans["signature"][2]
    try:
        signature = bytes.fromhex(sig)
    except (TypeError, ValueError):
        raise ParseError(f"{what}: signature is not hex") from None
    return s[start:end].encode("utf-8"), signature


# ---------------------------------------------------------------------------------------------
# dcap-qvl JSON form (QuoteCollateralV3): CRLs and signatures in hex, chains in PEM, JSON as text.

_JSON_KEYS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)


def collateral_to_json(c: Collateral) -> dict[str, str]:
    """dcap-qvl's collateral JSON (a dict ready for ``json.dumps``)."""
    return {
        "pck_crl_issuer_chain": c.pck_crl_issuer_chain.decode("ascii"),
        "root_ca_crl": c.root_ca_crl.hex(),
        "pck_crl": c.pck_crl.hex(),
        "tcb_info_issuer_chain": c.tcb_info_issuer_chain.decode("ascii"),
        "tcb_info": c.tcb_info.decode("utf-8"),
        "tcb_info_signature": c.tcb_info_signature.hex(),
        "qe_identity_issuer_chain": c.qe_identity_issuer_chain.decode("ascii"),
        "qe_identity": c.qe_identity.decode("utf-8"),
        "qe_identity_signature": c.qe_identity_signature.hex(),
    }


def collateral_from_json(data: Mapping[str, Any] | str | bytes) -> Collateral:
    """Read dcap-qvl's collateral JSON (a mapping, or its text)."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ParseError(f"collateral is not valid JSON: {str(e)[:160]}") from None
    if not isinstance(data, Mapping):
        raise ParseError("collateral JSON must be an object")
    missing = [k for k in _JSON_KEYS if not isinstance(data.get(k), str)]
    if missing:
        raise ParseError(f"collateral JSON lacks {missing[0]!r}", hint="expected dcap-qvl's collateral format")

    def hexval(key: str) -> bytes:
        try:
            return bytes.fromhex(data[key])
        except ValueError:
            raise ParseError(f"collateral JSON: {key!r} is not hex") from None

    def utf8(key: str) -> bytes:
        try:
            return bytes(data[key].encode("utf-8"))
        except UnicodeEncodeError as e:  # a lone surrogate ("\ud800"): the original re-attestation abort
            raise ParseError(f"collateral JSON: {key!r} has a lone surrogate at character {e.start}") from None

    return Collateral(
        tcb_info=utf8("tcb_info"),
        tcb_info_signature=hexval("tcb_info_signature"),
        tcb_info_issuer_chain=data["tcb_info_issuer_chain"].encode("ascii", "replace"),
        qe_identity=utf8("qe_identity"),
        qe_identity_signature=hexval("qe_identity_signature"),
        qe_identity_issuer_chain=data["qe_identity_issuer_chain"].encode("ascii", "replace"),
        root_ca_crl=hexval("root_ca_crl"),
        pck_crl=hexval("pck_crl"),
        pck_crl_issuer_chain=data["pck_crl_issuer_chain"].encode("ascii", "replace"),
    )


# ---------------------------------------------------------------------------------------------
# Files.


def crl_to_der(data: bytes) -> bytes:
    """A CRL given as DER, PEM or hex text (PCCS serves hex), as DER."""
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_crl(stripped).public_bytes(Encoding.DER)
        except ValueError:
            raise ParseError("CRL PEM is not valid") from None
    if stripped[:1] != b"\x30":
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ParseError("CRL is neither DER, PEM nor hex") from None
    return data


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def collateral_from_files(files: Sequence[tuple[str, bytes]], where: str) -> Collateral:
    """Collateral from the files of a directory of PCS responses, as ``(name, bytes)`` pairs.

    The files may be: the TCB info response (JSON with ``tcbInfo``), the QE identity response
    (JSON with ``enclaveIdentity``), certificates in PEM (root CA, PCK CA, TCB signing certificate;
    PCK leaf certificates are ignored), CRLs in DER/PEM (the root CA CRL is the one issued by the
    self-signed root; the other is the PCK CRL), or one dcap-qvl JSON file. Errors are located at
    the file's name, or at ``where`` (the directory) for what is missing. Reading the directory is
    the shell's: :func:`floodlight_trust.clients.collateral_files.load_collateral`.
    """
    tcb: tuple[bytes, bytes] | None = None
    qe: tuple[bytes, bytes] | None = None
    certs: list[x509.Certificate] = []
    crls: list[tuple[str, bytes, x509.CertificateRevocationList]] = []
    for f, raw in files:
        try:
            if raw.lstrip().startswith(b"{"):
                head = raw[:4096]
                if b'"tcbInfo"' in head:
                    tcb = split_signed_json(raw, "tcbInfo", "TCB info")
                elif b'"enclaveIdentity"' in head:
                    qe = split_signed_json(raw, "enclaveIdentity", "QE identity")
                elif b'"tcb_info"' in head:
                    return collateral_from_json(raw)
                continue
            if b"-----BEGIN CERTIFICATE-----" in raw:
                certs.extend(x509.load_pem_x509_certificates(raw))
                continue
            if b"-----BEGIN X509 CRL-----" in raw or raw[:1] == b"\x30":
                der = crl_to_der(raw)
                try:
                    crls.append((f, der, x509.load_der_x509_crl(der)))
                    continue
                except ValueError:
                    pass
                try:
                    certs.append(x509.load_der_x509_certificate(raw))
                except ValueError:
                    raise ParseError("not a DER CRL or certificate") from None
        except ParseError as e:
            raise e.with_file(f) from None
        except ValueError as e:
            raise ParseError(f"cannot read certificates: {e}", location=Location(f)) from None
    location = Location(where)
    if tcb is None or qe is None:
        raise InputError(
            f"collateral directory lacks the {'TCB info' if tcb is None else 'QE identity'} JSON", location=location
        )
    roots = [c for c in certs if c.issuer == c.subject]
    if not roots:
        raise InputError("collateral directory lacks the root CA certificate (PEM)", location=location)
    root = roots[0]

    def is_ca(c: x509.Certificate) -> bool:
        try:
            return bool(c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    signers = [c for c in certs if c.issuer == root.subject and c is not root and not is_ca(c)]
    pck_cas = [c for c in certs if c.issuer == root.subject and c is not root and is_ca(c)]
    if not signers:
        raise InputError("collateral directory lacks the TCB signing certificate", location=location)
    root_crls = [der for _, der, crl in crls if crl.issuer == root.subject]
    pck_crls = [der for _, der, crl in crls if crl.issuer != root.subject]
    if not root_crls or not pck_crls:
        raise InputError(
            f"collateral directory lacks the {'root CA' if not root_crls else 'PCK'} CRL", location=location
        )
    pck_crl = x509.load_der_x509_crl(pck_crls[0])
    issuers = [c for c in pck_cas if c.subject == pck_crl.issuer] or pck_cas
    if not issuers:
        raise InputError("collateral directory lacks the PCK CA certificate (issuer of the PCK CRL)", location=location)
    signing_chain = b"".join(_pem(c) for c in signers) + _pem(root)
    return Collateral(
        tcb_info=tcb[0],
        tcb_info_signature=tcb[1],
        tcb_info_issuer_chain=signing_chain,
        qe_identity=qe[0],
        qe_identity_signature=qe[1],
        qe_identity_issuer_chain=signing_chain,
        root_ca_crl=root_crls[0],
        pck_crl=pck_crls[0],
        pck_crl_issuer_chain=_pem(issuers[0]) + _pem(root),
    )
