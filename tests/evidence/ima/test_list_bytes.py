"""Rounds over a ListBytes (the chunks a verifier received round by round) read only the new chunks
and give exactly what rounds over contiguous bytes give: claims, findings, state and errors."""

from __future__ import annotations

import hashlib

import pytest

from floodlight_trust.evidence.ima import (
    ImaPrefixChanged,
    ImaState,
    ListBytes,
    appraise_measurement_list,
    make_entry,
    serialize_ascii,
    serialize_binary,
    sha256state,
)
from floodlight_trust.evidence.ima import appraise as appraise_module
from floodlight_trust.evidence.ima.appraise import ImaPrefixNotHeld
from floodlight_trust.evidence.ima.sha256state import Sha256State


def entries(n: int, start: int = 0) -> list:
    return [make_entry(f"/usr/bin/tool{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(start, start + n)]


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.claims == b.claims and a.findings == b.findings and a.ok == b.ok and a.entry_count == b.entry_count
    assert a.state == b.state  # the persisted fields (the in-memory ones do not compare)
    assert a.state.to_json() == b.state.to_json()


def _rounds(parts: list[bytes], *, chunked: bool) -> list:  # type: ignore[type-arg]
    held, state, data, out = None, None, b"", []
    for part in parts:
        data += part
        held = ListBytes((part,)) if held is None else held.append(part)
        out.append(appraise_measurement_list(held if chunked else data, state=state))
        state = out[-1].state
    return out


@pytest.mark.parametrize("serialize", [serialize_ascii, serialize_binary])
def test_rounds_over_chunks_equal_rounds_over_bytes(serialize, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    parts = [serialize(entries(n, start)) for start, n in ((0, 40), (40, 1), (41, 25), (66, 0), (66, 9))]
    compared: list[int] = []
    real = appraise_module._check_prefix

    def spy(data: bytes, state, source, whole=None):  # type: ignore[no-untyped-def]
        compared.append(state.byte_length)
        return real(data, state, source, whole)

    monkeypatch.setattr(appraise_module, "_check_prefix", spy)
    by_bytes = _rounds(parts, chunked=False)
    assert compared[1:] == [len(b"".join(parts[:k])) for k in range(1, len(parts))]  # every later round compares
    compared.clear()
    by_chunks = _rounds(parts, chunked=True)
    assert compared == [0]  # only the first round (nothing held yet): later ones read the new chunk only
    for a, b in zip(by_chunks, by_bytes, strict=True):
        _same(a, b)
    assert by_chunks[-1].entry_count == 75
    assert by_chunks[-1].state.prefix_sha256 == hashlib.sha256(b"".join(parts)).hexdigest()


def test_a_changed_prefix_in_new_chunks_is_named_as_with_bytes() -> None:
    first = serialize_ascii(entries(10))
    r1 = appraise_measurement_list(ListBytes((first,)))
    changed = first.replace(b"/usr/bin/tool3", b"/usr/bin/toolX")
    # Same length, other chunk objects: not an extension of the held chunks, so compared in full.
    with pytest.raises(ImaPrefixChanged, match="entry 3, appraised in an earlier round, has changed"):
        appraise_measurement_list(ListBytes((changed, serialize_ascii(entries(2, 10)))), state=r1.state)
    # Equal content in other objects is compared, and accepted.
    copy = ListBytes((bytes(bytearray(first)), serialize_ascii(entries(2, 10))))
    assert appraise_measurement_list(copy, state=r1.state).entry_count == 12


def test_a_partial_trailing_record_is_read_again_from_the_whole_list() -> None:
    whole = serialize_ascii(entries(5))
    cut = len(whole) - 7  # the last line arrives in two rounds
    r1 = appraise_measurement_list(ListBytes((whole[:cut],)))
    assert r1.entry_count == 4 and r1.state.byte_length < cut
    held = ListBytes((whole[:cut],)).append(whole[cut:])
    r2 = appraise_measurement_list(held, state=r1.state)
    assert r2.entry_count == 5 and r2.ok and not r2.findings
    _same(r2, appraise_measurement_list(whole, state=appraise_measurement_list(whole[:cut]).state))


def test_appending_past_the_chunk_limit_joins_once() -> None:
    held = ListBytes((b"a",))
    for _ in range(ListBytes.MAX_CHUNKS - 1):
        held = held.append(b"b")
    assert len(held.chunks) == ListBytes.MAX_CHUNKS
    joined = held.append(b"c")
    assert joined.chunks == (b"a" + b"b" * (ListBytes.MAX_CHUNKS - 1), b"c") and len(joined) == ListBytes.MAX_CHUNKS + 1
    # The held list is left as it is; the new one knows it extends it: the next round reads only the tail.
    assert len(held.chunks) == ListBytes.MAX_CHUNKS and joined.extends(held) and joined.after(held) == b"c"
    assert joined.append(b"d").extends(joined) and not joined.extends(ListBytes((b"a",)))


@pytest.mark.parametrize("serialize", [serialize_ascii, serialize_binary])
def test_a_restart_hashes_the_whole_list_once(serialize, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """After a restart the verifier hashes the whole list for the quote's binding; the snapshot at
    the persisted state's length is what the prefix check uses (no second pass), with the same result."""
    first = serialize(entries(30))
    persisted = ImaState.from_json(appraise_measurement_list(first).state.to_json())  # no bytes held
    grown = first + serialize(entries(5, 30))
    whole = ListBytes((grown,))
    assert whole.sha256(snapshot_at=persisted.byte_length).digest() == hashlib.sha256(grown).digest()
    assert whole.prefix_sha256(persisted.byte_length).digest() == hashlib.sha256(first).digest()
    assert whole.prefix_sha256(persisted.byte_length - 1) is None
    hashed: list[int] = []

    class Counting(Sha256State):
        def __init__(self, data: bytes | memoryview = b"") -> None:
            hashed.append(len(data))
            super().__init__(data)

    monkeypatch.setattr(appraise_module, "Sha256State", Counting)
    resumed = appraise_measurement_list(whole, state=persisted)
    assert hashed == []  # the prefix was not hashed again
    monkeypatch.undo()
    _same(resumed, appraise_measurement_list(grown, state=persisted))
    assert resumed.entry_count == 35


def test_a_snapshot_of_changed_bytes_still_fails_the_prefix_check() -> None:
    first = serialize_ascii(entries(10))
    persisted = ImaState.from_json(appraise_measurement_list(first).state.to_json())
    changed = first.replace(b"/usr/bin/tool3", b"/usr/bin/toolX") + serialize_ascii(entries(2, 10))
    whole = ListBytes((changed,))
    whole.sha256(snapshot_at=persisted.byte_length)
    with pytest.raises(ImaPrefixChanged, match="have changed"):
        appraise_measurement_list(whole, state=persisted)
    # A snapshot at another length (a stale state) is not used: the prefix is hashed as before.
    other = ListBytes((first + serialize_ascii(entries(2, 10)),))
    other.sha256(snapshot_at=persisted.byte_length - 5)
    assert appraise_measurement_list(other, state=persisted).entry_count == 12


@pytest.mark.skipif(not sha256state.NATIVE, reason="saved SHA-256 states need the native module _bulkhash")
@pytest.mark.parametrize("serialize", [serialize_ascii, serialize_binary])
def test_a_restored_state_appraises_a_tail_after_its_unheld_prefix(serialize) -> None:  # type: ignore[no-untyped-def]
    """A state restored from JSON with its saved SHA-256 state: the tail appended to its resume
    point is appraised alone, exactly as the whole list would be, and the running hash is the whole
    list's; a list that does not continue that very prefix cannot be appraised from it."""
    first, tail = serialize(entries(30)), serialize(entries(5, 30))
    persisted = ImaState.from_json(appraise_measurement_list(first).state.to_json())
    resume = persisted.resume_point()
    assert resume is not None
    prefix, hasher = resume
    assert len(prefix) == len(first) and not prefix.complete and hasher.digest() == hashlib.sha256(first).digest()
    resumed = appraise_measurement_list(prefix.append(tail), state=persisted)
    _same(resumed, appraise_measurement_list(first + tail, state=persisted))
    assert resumed.state.prefix_sha256 == hashlib.sha256(first + tail).hexdigest()
    again = ImaState.from_json(resumed.state.to_json())  # a tail-only round saves a resumable state too
    assert again.resume_point() is not None
    # Another object with the same unheld length is not that prefix: its bytes are needed, and absent.
    with pytest.raises(ImaPrefixNotHeld):
        appraise_measurement_list(ListBytes.unheld_prefix(len(first)).append(tail), state=persisted)
    with pytest.raises(ImaPrefixNotHeld):
        appraise_measurement_list(prefix.append(tail))  # no state: the whole list is needed
