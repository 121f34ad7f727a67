"""The fast TCB-info and QE-identity parsers agree with the plain reference parsers
(tests/evidence/sgx/reference_collateral.py): the same values on Intel's real collateral in
tests/data, and, on damaged collateral, the same values or the same ParseError message."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence import collateral
from floodlight_trust.evidence.collateral import parse_qe_identity, parse_tcb_info, split_signed_json
from tests.evidence.sgx.reference_collateral import reference_qe_identity, reference_tcb_info
from tests.support.requires import missing

DATA = Path(__file__).resolve().parents[2] / "data" / "sgx-dcap"
PHALA = json.loads((DATA / "phala" / "sgx_quote_collateral.json").read_bytes())
MOBILECOIN = DATA / "mobilecoin-attestation"
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _real_tcb_infos() -> dict[str, bytes]:
    mc, _ = split_signed_json((MOBILECOIN / "fmspc_00906ED50000_2023_07_12.json").read_bytes(), "tcbInfo", "x")
    return {"phala": PHALA["tcb_info"].encode(), "mobilecoin": mc}


def _real_qe_identities() -> dict[str, bytes]:
    mc, _ = split_signed_json((MOBILECOIN / "qe_identity.json").read_bytes(), "enclaveIdentity", "x")
    return {"phala": PHALA["qe_identity"].encode(), "mobilecoin": mc}


def _as_version_2(tcb_info: bytes) -> bytes:
    """A version-2 TCB info (sgxtcbcompNNsvn fields) with the same levels as a version-3 one."""
    doc = json.loads(tcb_info)
    doc["version"] = 2
    for level in doc["tcbLevels"]:
        comps = level["tcb"].pop("sgxtcbcomponents")
        level["tcb"] |= {f"sgxtcbcomp{n:02d}svn": c["svn"] for n, c in enumerate(comps, 1)}
        level["status"] = level.pop("tcbStatus")
    return json.dumps(doc).encode()


def _outcome(parse: Callable[[bytes], object], raw: bytes) -> tuple[str, object]:
    try:
        return "value", parse(raw)
    except ParseError as e:
        return "error", e.message


@pytest.mark.parametrize("name", ["phala", "mobilecoin"])
def test_real_tcb_info_agrees(name: str) -> None:
    raw = _real_tcb_infos()[name]
    fast = parse_tcb_info(raw)
    assert fast == reference_tcb_info(raw)
    assert len(fast.levels) > 5 and all(len(level.components) == 16 for level in fast.levels)
    v2 = _as_version_2(raw)
    assert parse_tcb_info(v2) == reference_tcb_info(v2)
    assert parse_tcb_info(v2).levels == fast.levels  # the same levels, read from the other layout


@pytest.mark.parametrize("name", ["phala", "mobilecoin"])
def test_real_qe_identity_agrees(name: str) -> None:
    raw = _real_qe_identities()[name]
    assert parse_qe_identity(raw) == reference_qe_identity(raw)
    assert parse_qe_identity(raw).levels


# Values a damaged collateral may carry where the real one has something else.
ODD_VALUES = st.sampled_from([None, 0, -1, 1, True, False, 1.5, 2**70, "", "x", "00", [], {}, [1], {"svn": 1}, ["a"]])


def _damage(draw: st.DrawFn, root: Any, odd: st.SearchStrategy[Any], *, append: bool = False) -> None:
    """Replace a few values of ``root`` by ``odd`` ones, or remove keys, at any depth (in place);
    with ``append``, sometimes append an odd value to a list instead."""
    for _ in range(draw(st.integers(1, 3))):
        node: Any = root
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.integers(0, 3)) > 0:  # mostly deep
                node = child
                continue
            if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
                del node[key]
            elif append and isinstance(node, list) and draw(st.integers(0, 5)) == 0:
                node.append(copy.deepcopy(draw(odd)))  # a 17th component, an extra level
            else:
                node[key] = copy.deepcopy(draw(odd))  # never the strategy's own list
            break


@st.composite
def damaged_json(draw: st.DrawFn, raw: bytes, under: str | None = None) -> bytes:
    """The real document with a few values replaced by odd ones, or keys removed, at any depth
    (below the key ``under`` when given: the levels, where most of the checks are)."""
    doc = json.loads(raw)
    _damage(draw, doc if under is None else doc[under], ODD_VALUES)
    return json.dumps(doc).encode()


def _bytes_damaged(raw: bytes) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda at, cut, ins: raw[:at] + ins + raw[at + cut :],
        st.integers(0, len(raw)),
        st.integers(0, 8),
        st.sampled_from([b"", b"0", b'"', b"{", b"]", b",", b"null", b"\xff"]),
    )


@FUZZ
@given(data=st.data(), name=st.sampled_from(["phala", "mobilecoin"]), v2=st.booleans())
def test_damaged_tcb_info_agrees(data: st.DataObject, name: str, v2: bool) -> None:
    raw = _real_tcb_infos()[name]
    raw = _as_version_2(raw) if v2 else raw
    damaged = data.draw(st.one_of(damaged_json(raw), damaged_json(raw, "tcbLevels"), _bytes_damaged(raw)))
    assert _outcome(parse_tcb_info, damaged) == _outcome(reference_tcb_info, damaged)


@FUZZ
@given(data=st.data(), name=st.sampled_from(["phala", "mobilecoin"]))
def test_damaged_qe_identity_agrees(data: st.DataObject, name: str) -> None:
    raw = _real_qe_identities()[name]
    damaged = data.draw(st.one_of(damaged_json(raw), damaged_json(raw, "tcbLevels"), _bytes_damaged(raw)))
    assert _outcome(parse_qe_identity, damaged) == _outcome(reference_qe_identity, damaged)


def _edit_tcb_info(edit: Callable[[dict[str, Any]], object]) -> bytes:
    doc = json.loads(_real_tcb_infos()["phala"])
    edit(doc)
    return json.dumps(doc).encode()


def _set_first_level(key: str, value: object) -> Callable[[dict[str, Any]], object]:
    return lambda d: d["tcbLevels"][0].__setitem__(key, value)


def _set_first_svn(value: object) -> Callable[[dict[str, Any]], object]:
    return lambda d: d["tcbLevels"][0]["tcb"].__setitem__("pcesvn", value)


# Where orjson (the fast reading) and json.loads (the reference) differ: orjson reads an integer
# beyond 64 bits as a float and refuses NaN, Infinity and lone surrogates. The parser must give
# json.loads' answer on each, value or error.
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_edit_tcb_info(_set_first_svn(2**70)), id="pcesvn-beyond-64-bits"),
        pytest.param(_edit_tcb_info(lambda d: d.__setitem__("version", 2**70)), id="version-beyond-64-bits"),
        pytest.param(_edit_tcb_info(lambda d: d.__setitem__("tcbEvaluationDataNumber", 2**70)), id="unread-big-int"),
        pytest.param(_edit_tcb_info(_set_first_level("advisoryIDs", [2**70])), id="advisory-big-int"),
        pytest.param(_edit_tcb_info(_set_first_level("advisoryIDs", ["INTEL-SA-1", 7])), id="advisory-not-str"),
        pytest.param(_edit_tcb_info(_set_first_level("tcbDate", 2**70)), id="tcbdate-big-int"),
        pytest.param(_edit_tcb_info(_set_first_level("tcbDate", None)), id="tcbdate-null"),
        pytest.param(_edit_tcb_info(lambda d: d.__setitem__("x", float("nan"))), id="nan"),
        pytest.param(_edit_tcb_info(lambda d: d.__setitem__("x", float("inf"))), id="infinity"),
        pytest.param(_edit_tcb_info(lambda d: d.__setitem__("x", "\ud800")), id="lone-surrogate"),
        pytest.param(
            _edit_tcb_info(lambda d: d["tcbLevels"][0].__setitem__("tcbStatus", "\ud800")), id="status-surrogate"
        ),
        pytest.param(b'{"version": 3, "version": 2}', id="duplicate-key"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-nesting"),
    ],
)
def test_fast_json_reading_gives_the_reference_answer(raw: bytes) -> None:
    assert _outcome(parse_tcb_info, raw) == _outcome(reference_tcb_info, raw)


def test_big_integers_are_read_exactly_not_as_floats() -> None:
    raw = _edit_tcb_info(_set_first_svn(2**70))
    assert parse_tcb_info(raw).levels[0].pce_svn == 2**70  # orjson alone would give 1.18e21 and fail
    qe = json.loads(_real_qe_identities()["phala"])
    qe["tcbLevels"][0]["tcb"]["isvsvn"] = 2**64
    assert parse_qe_identity(json.dumps(qe).encode()).levels[0].isv_svn == 2**64


@pytest.mark.parametrize("field,value", [("id", 2**70), ("id", 5), ("id", None)])
def test_qe_identity_id_must_be_a_string(field: str, value: object) -> None:
    qe = json.loads(_real_qe_identities()["phala"])
    qe[field] = value
    raw = json.dumps(qe).encode()
    assert _outcome(parse_qe_identity, raw) == ("error", "QE identity: field 'id' is not a string")
    assert _outcome(reference_qe_identity, raw) == ("error", "QE identity: field 'id' is not a string")


# The native TCB-level reader (floodlight_trust/evidence/_tcblevels.c) against its reference
# (collateral._tcb_levels_py): the same levels or the same first error, on the real levels of both
# versions and on damaged ones.


def _native_levels() -> Callable[[list[Any], bool], object]:
    """The native reader; without it, skipped with the reason, except under CI (``CI`` set), where
    make setup builds it: there a missing module fails, so a green CI cannot hide it."""
    if not collateral.TCB_LEVELS_NATIVE:
        missing("the native _tcblevels module is not built in this environment (make setup builds it)")
    return collateral._tcb_levels_native


def _levels_outcome(read: Callable[[list[Any], bool], object], levels: list[Any], v3: bool) -> tuple[str, object]:
    try:
        return "value", read(levels, v3)
    except ParseError as e:
        return "error", e.message


@pytest.mark.parametrize("name", ["phala", "mobilecoin"])
@pytest.mark.parametrize("v2", [False, True])
def test_real_tcb_levels_native_agrees(name: str, v2: bool) -> None:
    native = _native_levels()
    raw = _real_tcb_infos()[name]
    levels = json.loads(_as_version_2(raw) if v2 else raw)["tcbLevels"]
    assert native(levels, not v2) == collateral._tcb_levels_py(levels, not v2)
    assert len(native(levels, not v2)) > 5  # type: ignore[arg-type]


LEVEL_ODD_VALUES = st.sampled_from(
    [None, 0, 1, True, False, 1.5, 2**70, "", "x", [], {}, [1], ["a", 1], {"svn": 1}, {"svn": True}, "UpToDate"]
)


@st.composite
def damaged_levels(draw: st.DrawFn, levels: list[Any]) -> list[Any]:
    """Levels with values replaced by odd ones or keys removed, at any depth (as damaged_json)."""
    doc = copy.deepcopy(levels)
    _damage(draw, doc, LEVEL_ODD_VALUES, append=True)
    return doc


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(["phala", "mobilecoin"]), v2=st.booleans())
def test_damaged_tcb_levels_native_agrees(data: st.DataObject, name: str, v2: bool) -> None:
    native = _native_levels()
    raw = _real_tcb_infos()[name]
    levels = json.loads(_as_version_2(raw) if v2 else raw)["tcbLevels"]
    damaged = data.draw(damaged_levels(levels))
    for v3 in (not v2, v2):  # also each layout read as the other
        assert _levels_outcome(native, damaged, v3) == _levels_outcome(collateral._tcb_levels_py, damaged, v3)


@pytest.mark.parametrize(
    "levels",
    [
        [],
        [None],
        [[]],
        [{"tcb": []}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": 1}, "tcbStatus": "", "status": "UpToDate"}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": 1}, "tcbStatus": 0}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": True}] * 16, "pcesvn": 1}, "tcbStatus": "x", "advisoryIDs": "INTEL"}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": True}, "tcbStatus": "x"}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 2**70}] * 16, "pcesvn": 2**70}, "tcbStatus": "x", "tcbDate": "d"}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 15 + [[1]], "pcesvn": 1}, "tcbStatus": "x"}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": 1}, "tcbStatus": "x", "advisoryIDs": ["a" * 80, 1]}],
        [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": 1}, "tcbStatus": "x", "tcbDate": 5}],
    ],
)
def test_built_tcb_levels_native_agrees(levels: list[Any]) -> None:
    native = _native_levels()
    for v3 in (True, False):
        assert _levels_outcome(native, levels, v3) == _levels_outcome(collateral._tcb_levels_py, levels, v3)


# The native QE-level reader (_tcblevels.qe_levels) against its reference (collateral._qe_levels_py).


def _qe_outcome(read: Callable[[list[Any]], object], levels: list[Any]) -> tuple[str, object]:
    try:
        return "value", read(levels)
    except ParseError as e:
        return "error", e.message


@pytest.mark.parametrize("name", ["phala", "mobilecoin"])
def test_real_qe_levels_native_agrees(name: str) -> None:
    _native_levels()
    levels = json.loads(_real_qe_identities()[name])["tcbLevels"]
    native = collateral._qe_levels_native(levels)
    assert native == collateral._qe_levels_py(levels) and len(native) > 3
    assert all(type(level) is collateral.QeTcbLevel for level in native)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(["phala", "mobilecoin"]))
def test_damaged_qe_levels_native_agrees(data: st.DataObject, name: str) -> None:
    _native_levels()
    levels = json.loads(_real_qe_identities()[name])["tcbLevels"]
    damaged = data.draw(damaged_levels(levels))
    assert _qe_outcome(collateral._qe_levels_native, damaged) == _qe_outcome(collateral._qe_levels_py, damaged)


@pytest.mark.parametrize(
    "levels",
    [
        [],
        [None],
        [[]],
        [{"tcb": []}],
        [{"tcb": {"isvsvn": 1}}],
        [{"tcb": {"isvsvn": True}, "tcbStatus": "UpToDate"}],
        [{"tcb": {"isvsvn": 1.0}, "tcbStatus": "UpToDate"}],
        [{"tcb": {"isvsvn": 2**70}, "tcbStatus": "UpToDate"}],
        [{"tcb": {}, "tcbStatus": 5}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": ""}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": "x", "advisoryIDs": "INTEL"}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": "x", "advisoryIDs": []}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": "x", "advisoryIDs": ["a" * 80, 1]}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": "x", "advisoryIDs": {"a": 1}}],
        [{"tcb": {"isvsvn": 1}, "tcbStatus": "x"}, {"tcb": {"isvsvn": 0}, "tcbStatus": 0}],
    ],
)
def test_built_qe_levels_native_agrees(levels: list[Any]) -> None:
    _native_levels()
    assert _qe_outcome(collateral._qe_levels_native, levels) == _qe_outcome(collateral._qe_levels_py, levels)
