"""The bulk hashing of the appraisal (evidence/ima/bulkhash.py): the native module agrees with the
pure-Python reference on fuzzed input, and whole appraisals of the real lists in tests/data (and of
fuzzed, damaged lists) come out the same, byte for byte, with either."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence.ima import appraise_measurement_list, bulkhash, make_entry, serialize_ascii
from floodlight_trust.evidence.ima.appraise import ImaAppraisal
from tests.support.requires import missing

BANKS = ("sha1", "sha256", "sha384", "sha512")
SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
DATA = Path(__file__).resolve().parents[2] / "data"


def native() -> object:
    """The native module; without it, skipped with the reason, except under CI (``CI`` set), where
    make setup builds it: there a missing module fails, so a green CI cannot hide it."""
    if not bulkhash.NATIVE:
        missing("the native _bulkhash module is not built in this environment (make setup builds it)")
    from floodlight_trust.evidence.ima import _bulkhash  # type: ignore[attr-defined]

    return _bulkhash


def test_the_reference_functions_are_the_hashes_they_say() -> None:
    items = [b"", b"a", b"x" * 1000]
    for bank in BANKS:
        h = getattr(hashlib, bank)
        joined = b"".join(h(x).digest() for x in items)
        assert bulkhash.digests_py(bank, items) == joined
        assert bulkhash.digests_py(bank, items, b"P") == b"".join(b"P" + h(x).digest() for x in items)
        value = bytes(SIZES[bank])
        for x in items:
            value = h(value + h(x).digest()).digest()
        assert bulkhash.replay_py(bank, bytes(SIZES[bank]), items) == value
        assert bulkhash.extend_py(bank, bytes(SIZES[bank]), joined) == value


@settings(max_examples=60, deadline=None)
@given(
    bank=st.sampled_from(BANKS),
    items=st.lists(st.binary(max_size=300), max_size=40),
    prefix=st.binary(max_size=6),
    start=st.binary(min_size=64, max_size=64),
)
def test_native_agrees_with_the_reference(bank: str, items: list[bytes], prefix: bytes, start: bytes) -> None:
    mod = native()
    size = SIZES[bank]
    value = start[:size]
    assert mod.digests(bank, items, prefix) == bulkhash.digests_py(bank, items, prefix)  # type: ignore[attr-defined]
    assert mod.replay(bank, value, items) == bulkhash.replay_py(bank, value, items)  # type: ignore[attr-defined]
    laid_out = bulkhash.digests_py(bank, items, prefix)
    stride = len(prefix) + size
    assert mod.extend(bank, value, laid_out, stride, len(prefix)) == bulkhash.extend_py(  # type: ignore[attr-defined]
        bank, value, laid_out, stride, len(prefix)
    )


def test_native_refuses_what_the_reference_refuses() -> None:
    mod = native()
    for fn in (mod.extend, bulkhash.extend_py):  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            fn("sha256", bytes(31), bytes(32))  # not one digest
        with pytest.raises(ValueError):
            fn("sha256", bytes(32), bytes(33))  # not whole strides
        with pytest.raises(ValueError):
            fn("sha256", bytes(32), bytes(64), 32, 1)  # the digest does not fit its stride
        with pytest.raises(ValueError):
            fn("md5", bytes(16), b"")
    for fn in (mod.digests, bulkhash.digests_py):  # type: ignore[attr-defined]
        with pytest.raises((TypeError, AttributeError)):
            fn("sha1", [b"ok", "text"])
    for fn in (mod.replay, bulkhash.replay_py):  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            fn("sha1", bytes(32), [b""])


def _real_lists() -> Iterator[tuple[str, bytes]]:
    for path in sorted((DATA / "ima").rglob("*")) + sorted((DATA / "ima-sig").rglob("*")):
        if path.suffix in (".log", ".bin") or path.name.endswith("ascii_runtime_measurements.DERIVED.txt"):
            yield str(path.relative_to(DATA)), path.read_bytes()
        elif path.suffix == ".b64":
            yield str(path.relative_to(DATA)), base64.b64decode(path.read_bytes())
        elif path.suffix == ".txt" and ("MEASUREMENTS" in path.name or "SIGNATURES" in path.name):
            yield str(path.relative_to(DATA)), path.read_bytes()


REAL = list(_real_lists())


def _outcome(data: bytes, banks: tuple[str, ...], state: object = None) -> tuple[object, ...] | str:
    try:
        a: ImaAppraisal = appraise_measurement_list(data, banks=banks, state=state)  # type: ignore[arg-type]
    except FtrustError as e:
        return f"{type(e).__name__}: {e}"
    return (a.ok, a.entry_count, a.claims, a.state.to_json(), a.findings)


def _with_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulkhash, "digests", bulkhash.digests_py)
    monkeypatch.setattr(bulkhash, "extend", bulkhash.extend_py)
    monkeypatch.setattr(bulkhash, "replay", bulkhash.replay_py)


def test_the_real_lists_are_found() -> None:
    names = [n for n, _ in REAL]
    assert len(REAL) >= 15 and any(n.endswith("imatest.log") for n in names) and any(".b64" in n for n in names)


@pytest.mark.parametrize(("name", "data"), REAL, ids=[n for n, _ in REAL])
def test_real_lists_appraise_the_same_with_the_reference(
    name: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    native()
    banks = ("sha1", "sha256", "sha384", "sha512")
    ours = _outcome(data, banks)
    half = _outcome(data[: len(data) // 2], ("sha256", "sha1"))
    with monkeypatch.context() as m:
        _with_reference(m)
        assert _outcome(data, banks) == ours, name
        assert _outcome(data[: len(data) // 2], ("sha256", "sha1")) == half, name


def _entries(n: int, templates: tuple[str, ...] = ("ima-ng",)) -> list[bytes]:
    """ASCII lines: of one template, the shape the fast reader takes; of several, the line-by-line one's."""
    return [
        serialize_ascii(
            [make_entry(f"/usr/bin/f{i}", hashlib.sha256(b"%d" % i).digest(), template=templates[i % len(templates)])]
        )
        for i in range(n)
    ]


SOURCES = {
    "binary": next(d for n, d in REAL if n.endswith("ibmtss/sha256.log")),
    "ascii": b"".join(_entries(60)),
    "ascii-mixed": b"".join(_entries(60, ("ima-ng", "ima-sig"))),
}


@settings(max_examples=40, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), max_size=4),
    source=st.sampled_from(sorted(SOURCES)),
    cut=st.integers(0, 60),
)
def test_damaged_lists_appraise_the_same_with_the_reference(
    edits: list[tuple[int, bytes]], source: str, cut: int
) -> None:
    native()
    data = SOURCES[source]
    buf = bytearray(data[: max(1, len(data) * cut // 60)] if cut else data)
    for at, new in edits:
        at %= len(buf)
        buf[at : at + len(new)] = new
    damaged = bytes(buf)
    ours = _outcome(damaged, ("sha1", "sha256"))
    with pytest.MonkeyPatch.context() as m:
        _with_reference(m)
        assert _outcome(damaged, ("sha1", "sha256")) == ours, source


def test_incremental_rounds_agree_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    native()
    lines = _entries(300) + _entries(50, ("ima-sig", "ima-ng"))
    first = appraise_measurement_list(b"".join(lines[:100]))
    ours = _outcome(b"".join(lines), ("sha1", "sha256"), first.state)
    with monkeypatch.context() as m:
        _with_reference(m)
        first_ref = appraise_measurement_list(b"".join(lines[:100]))
        assert first_ref.state.to_json() == first.state.to_json()
        assert _outcome(b"".join(lines), ("sha1", "sha256"), first_ref.state) == ours


def _read(lines: list[bytes]) -> tuple[bool, tuple[object, ...] | None]:
    from floodlight_trust.evidence.ima import ascii as ascii_list
    from floodlight_trust.evidence.ima.batch import Batch

    batch = Batch(first_index=0)
    ok = ascii_list._fast(batch, lines, 1, 0)
    fields = (batch.hashes, batch.inputs, batch.paths, batch.digests, batch.algos, batch.templates, batch.sigs)
    return ok, fields if ok else None


NG_LINES = [
    line.encode()
    for line in serialize_ascii(
        [make_entry(f"/usr/lib/t\u00e9st/{i} x", hashlib.sha256(b"%d" % i).digest()) for i in range(6)]
    ).decode().splitlines()
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    at=st.tuples(st.integers(0, len(NG_LINES) - 1), st.integers(0, 200)),
    byte=st.sampled_from([b"A", b"g", b" ", b"0", b"\xff", b"\xc3", b""]),
)
def test_the_native_ima_ng_columns_read_exactly_what_the_reference_reads(at: tuple[int, int], byte: bytes) -> None:
    """ascii._fast with the C columns and with the map-based reference, on ima-ng lines with one
    byte replaced or removed anywhere (hash, template, digest, path, not UTF-8): the same verdict
    (fits or not) and the same columns."""
    from floodlight_trust.evidence.ima import ascii as ascii_list

    native()
    k, pos = at
    lines = list(NG_LINES)
    line = lines[k]
    pos = min(pos, len(line) - 1)
    lines[k] = line[:pos] + byte + line[pos + 1 :]
    with_c = _read(lines)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ascii_list, "_ng_columns", None)
        reference = _read(lines)
    assert with_c == reference
    assert _read(list(NG_LINES))[0]  # the undamaged lines fit the fast reader
