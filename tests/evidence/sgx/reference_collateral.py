"""The plain TCB-info and QE-identity parsers, kept as the oracle for the fast ones in
floodlight_trust/evidence/collateral.py (the code that ran before the cold DCAP path was made
cheaper, issue 15): one straightforward check per field, a location string per level.

Its only changes: a non-list ``advisoryIDs`` is a ParseError here as in the fast parser (it was a
tuple of a string's characters, or a TypeError for a number); so are advisory IDs, a ``tcbDate``
and a QE identity ``id`` that are not strings (they were kept as any JSON value, or rendered with
``str``: the fast parser reads with orjson, whose float for a >64-bit integer renders otherwise),
and JSON nested past the recursion limit (a RecursionError, now a ParseError here as there).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from floodlight_trust.clock import parse_time
from floodlight_trust.errors import InputError, ParseError
from floodlight_trust.evidence.collateral import QeIdentity, QeTcbLevel, TcbInfo, TcbLevel


def _json_obj(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ParseError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not a JSON object")
    return value


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


def _advisories(d: Mapping[str, Any]) -> tuple[str, ...]:
    ids = d.get("advisoryIDs") or ()
    if not isinstance(ids, list | tuple) or not all(isinstance(x, str) for x in ids):
        raise ParseError(f"advisoryIDs is not a list of strings: {str(ids)[:40]!r}")
    return tuple(ids)


_JSON_INTS = frozenset((int, bool))  # the types json.loads gives that isinstance(v, int) accepts


def reference_tcb_info(raw: bytes) -> TcbInfo:
    """Decode the exact ``tcbInfo`` JSON value (versions 2 and 3, SGX)."""
    what = "TCB info"
    d = _json_obj(raw, what)
    version = _field(d, "version", int, what)
    if d.get("id", "SGX") != "SGX":
        raise ParseError(f"{what} is for {d.get('id')!r}, not SGX")
    levels = []
    for i, lv in enumerate(_field(d, "tcbLevels", list, what)):
        w = f"{what} tcbLevels[{i}]"
        if not isinstance(lv, dict) or not isinstance(lv.get("tcb"), dict):
            raise ParseError(f"{w}: missing 'tcb'")
        tcb = lv["tcb"]
        if version >= 3:
            comps_raw = _field(tcb, "sgxtcbcomponents", list, w)
            try:  # JSON values: c["svn"] succeeds exactly when c is an object with an svn
                svns = [c["svn"] for c in comps_raw]
            except (TypeError, KeyError):
                svns = []
            if len(svns) != 16 or not set(map(type, svns)) <= _JSON_INTS:
                raise ParseError(f"{w}: sgxtcbcomponents must be 16 objects with an integer svn")
            comps = tuple(map(int, svns))
        else:
            comps = tuple(int(_field(tcb, f"sgxtcbcomp{n:02d}svn", int, w)) for n in range(1, 17))
        status = lv.get("tcbStatus") or lv.get("status")
        if not isinstance(status, str):
            raise ParseError(f"{w}: missing tcbStatus")
        pce_svn, advisories = _field(tcb, "pcesvn", int, w), _advisories(lv)
        date = lv.get("tcbDate")
        if date is not None and not isinstance(date, str):
            raise ParseError(f"{w}: field 'tcbDate' is not a string")
        levels.append(TcbLevel(comps, pce_svn, status, advisories, date))
    return TcbInfo(
        version=version,
        issue_date=_time(d, "issueDate", what),
        next_update=_time(d, "nextUpdate", what),
        fmspc=_hexfield(d, "fmspc", what),
        pce_id=_hexfield(d, "pceId", what),
        levels=tuple(levels),
    )


def reference_qe_identity(raw: bytes) -> QeIdentity:
    """Decode the exact ``enclaveIdentity`` JSON value (version 2)."""
    what = "QE identity"
    d = _json_obj(raw, what)
    levels = []
    for i, lv in enumerate(_field(d, "tcbLevels", list, what)):
        w = f"{what} tcbLevels[{i}]"
        if not isinstance(lv, dict) or not isinstance(lv.get("tcb"), dict):
            raise ParseError(f"{w}: missing 'tcb'")
        levels.append(QeTcbLevel(_field(lv["tcb"], "isvsvn", int, w), _field(lv, "tcbStatus", str, w), _advisories(lv)))
    ident = d.get("id", "QE")
    if not isinstance(ident, str):
        raise ParseError(f"{what}: field 'id' is not a string")
    return QeIdentity(
        id=ident,
        issue_date=_time(d, "issueDate", what),
        next_update=_time(d, "nextUpdate", what),
        misc_select=int.from_bytes(_hexfield(d, "miscselect", what), "big"),
        misc_select_mask=int.from_bytes(_hexfield(d, "miscselectMask", what), "big"),
        attributes=_hexfield(d, "attributes", what),
        attributes_mask=_hexfield(d, "attributesMask", what),
        mr_signer=_hexfield(d, "mrsigner", what),
        isv_prod_id=_field(d, "isvprodid", int, what),
        levels=tuple(levels),
    )
