"""parse(serialize(x)) == x in both formats, and arbitrary bytes only ever raise ParseError."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.claims import ima_to_json
from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.ima import (
    appraise_measurement_list,
    make_entry,
    parse_line,
    records_from_binary,
    serialize_ascii,
    serialize_binary,
)
from floodlight_trust.evidence.ima.templates import DIGEST_SIZES, ImaRecord

paths = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\0\n"), min_size=1, max_size=60
)
algos = st.sampled_from(["sha1", "sha256", "sha384", "sha512"])
templates = st.sampled_from(["ima-ng", "ima-sig", "ima-ngv2", "ima-sigv2", "ima-buf", "d-ng|n-ng|sig|buf"])


@st.composite
def records(draw: st.DrawFn) -> ImaRecord:
    template = draw(templates)
    algo = draw(algos)
    digest = draw(st.binary(min_size=DIGEST_SIZES[algo], max_size=DIGEST_SIZES[algo]))
    if draw(st.integers(0, 9)) == 0:
        template, algo, digest = "ima", "sha1", digest[:20].ljust(20, b"\0")
    entry = make_entry(
        draw(paths),
        digest,
        algo,
        template,
        pcr=draw(st.sampled_from([10, 10, 10, 11])),
        signature=draw(st.binary(max_size=40)),
        buffer=draw(st.binary(max_size=40)),
    )
    return entry._replace(violation=draw(st.integers(0, 19)) == 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), max_size=12), st.sampled_from(["sha1", "sha256"]))
def test_binary_round_trip(entries: list[ImaRecord], bank: str) -> None:
    data = serialize_binary(entries, bank)
    assert records_from_binary(data, DIGEST_SIZES[bank]) == entries
    if entries:
        a = appraise_measurement_list(data, banks=(bank,))
        assert a.ok and a.entry_count == len(entries)
        assert [p for p in a.claims.paths] == [e.fields[1].rstrip(b"\0").decode() for e in entries]


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), max_size=12), st.sampled_from(["sha1", "sha256", "sha512"]))
def test_ascii_round_trip(entries: list[ImaRecord], bank: str) -> None:
    data = serialize_ascii(entries, bank)
    lines = data.split(b"\n")[:-1]
    assert [parse_line(line)[0] for line in lines] == entries
    a = appraise_measurement_list(data, banks=("sha1", bank))
    assert a.ok and a.entry_count == len(entries)
    assert len(a.claims.violations) == sum(e.violation for e in entries)
    # The same list in binary form replays to the same PCR values.
    if entries:
        b = appraise_measurement_list(serialize_binary(entries, bank), banks=("sha1", bank))
        assert b.claims.pcr_values == a.claims.pcr_values


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        appraise_measurement_list(data)
    except ParseError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=4), st.data())
def test_corrupted_binary_lists_raise_only_parse_errors(entries: list[ImaRecord], data: st.DataObject) -> None:
    raw = bytearray(serialize_binary(entries))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        appraise_measurement_list(bytes(raw))
    except ParseError:
        pass


def test_file_digest_helper() -> None:
    e = make_entry("/usr/bin/x", hashlib.sha256(b"x").digest())
    assert e.template == "ima-ng" and e.pcr == 10
    assert e.fields == (b"sha256:\0" + hashlib.sha256(b"x").digest(), b"/usr/bin/x\0")


@st.composite
def uniform_lists(draw: st.DrawFn) -> list[ImaRecord]:
    """Lists the fast readers take: one common template and digest algorithm, PCR 10 (maybe spoilt)."""
    template = draw(st.sampled_from(["ima-ng", "ima-sig", "ima-ngv2", "ima-sigv2"]))
    algo = draw(algos)
    n = draw(st.integers(1, 8))
    out = [
        make_entry(
            draw(paths),
            draw(st.binary(min_size=DIGEST_SIZES[algo], max_size=DIGEST_SIZES[algo])),
            algo,
            template,
            signature=draw(st.binary(max_size=20)),
        )
        for _ in range(n)
    ]
    if draw(st.booleans()):  # spoil one entry so the fast path must hand over
        i = draw(st.integers(0, n - 1))
        out[i] = out[i]._replace(pcr=draw(st.sampled_from([10, 11])), violation=draw(st.booleans()))
    return out


@settings(max_examples=150, deadline=None)
@given(uniform_lists(), st.sampled_from(["sha1", "sha256"]), st.sampled_from(["ascii", "binary"]), st.data())
def test_fast_readers_agree_with_record_by_record_reading(
    entries: list[ImaRecord], bank: str, fmt: str, data: st.DataObject
) -> None:
    from unittest import mock

    raw = serialize_ascii(entries, bank) if fmt == "ascii" else serialize_binary(entries, bank)
    if data.draw(st.booleans()):  # tamper with one byte, or cut the list short
        raw = bytearray(raw)
        if data.draw(st.booleans()):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        else:
            raw = raw[: data.draw(st.integers(1, len(raw)))]
        raw = bytes(raw)

    def outcome() -> object:
        try:
            a = appraise_measurement_list(raw, banks=("sha1", "sha256"))
        except ParseError as e:
            return ("error", str(e))
        return (a.ok, a.findings, a.state.to_json(), ima_to_json(a.claims))

    fast = outcome()
    with (
        mock.patch("floodlight_trust.evidence.ima.binary.fast_chunk", return_value=None),
        mock.patch("floodlight_trust.evidence.ima.ascii._fast", return_value=False),
    ):
        slow = outcome()
    assert fast == slow
