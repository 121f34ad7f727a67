"""Incremental appraisal: resume from a state, O(new) rounds, and a changed prefix is caught."""

from __future__ import annotations

import hashlib
import json

import pytest

from floodlight_trust.errors import InputError
from floodlight_trust.evidence.ima import (
    ImaPrefixChanged,
    ImaState,
    appraise_measurement_list,
    make_entry,
    serialize_ascii,
    serialize_binary,
)


def entries(n: int, start: int = 0) -> list:
    return [make_entry(f"/usr/bin/tool{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(start, start + n)]


@pytest.mark.parametrize("serialize", [serialize_ascii, serialize_binary])
def test_rounds_equal_one_pass(serialize) -> None:  # type: ignore[no-untyped-def]
    first, second = serialize(entries(50)), serialize(entries(80))
    assert second.startswith(first)
    r1 = appraise_measurement_list(first)
    r2 = appraise_measurement_list(second, state=r1.state)
    whole = appraise_measurement_list(second)
    assert r2.ok and r2.entry_count == 80 and len(r2.claims) == 30
    assert r2.claims.first_index == 50 and r2.claims.paths[0] == "/usr/bin/tool50"
    assert r2.claims.pcr_values == whole.claims.pcr_values
    assert r2.state.prefix_sha256 == hashlib.sha256(second).hexdigest() == whole.state.prefix_sha256
    # Nothing new: an empty round with the same PCR values.
    r3 = appraise_measurement_list(second, state=r2.state)
    assert len(r3.claims) == 0 and r3.claims.pcr_values == whole.claims.pcr_values


@pytest.mark.parametrize("serialize", [serialize_ascii, serialize_binary])
def test_state_survives_json(serialize) -> None:  # type: ignore[no-untyped-def]
    first, second = serialize(entries(20)), serialize(entries(25))
    r1 = appraise_measurement_list(first)
    restored = ImaState.from_json(json.loads(json.dumps(r1.state.to_json())))
    assert restored == r1.state
    r2 = appraise_measurement_list(second, state=restored)
    assert r2.claims.pcr_values == appraise_measurement_list(second).claims.pcr_values
    with pytest.raises(ImaPrefixChanged, match=r"first 20 entries .* have changed"):
        appraise_measurement_list(second.replace(b"tool3", b"tool9"), state=restored)


def test_changed_prefix_names_the_first_differing_ascii_entry() -> None:
    r1 = appraise_measurement_list(serialize_ascii(entries(100)))
    tampered = serialize_ascii(entries(110)).replace(b"/usr/bin/tool42", b"/usr/bin/toolXX")
    with pytest.raises(ImaPrefixChanged) as info:
        appraise_measurement_list(tampered, state=r1.state, source="ascii_runtime_measurements")
    e = info.value
    assert e.location is not None and (e.location.line, e.location.index) == (43, 42)
    assert str(e).startswith("ascii_runtime_measurements:43:entry 42: entry 42, appraised in an earlier round")
    assert e.exit_code == 1


def test_changed_prefix_names_the_first_differing_binary_entry() -> None:
    es = entries(100)
    r1 = appraise_measurement_list(serialize_binary(es))
    es[77] = make_entry("/usr/bin/other", bytes(32))
    with pytest.raises(ImaPrefixChanged) as info:
        appraise_measurement_list(serialize_binary(es + entries(3, 100)), state=r1.state)
    assert info.value.location is not None
    assert info.value.location.index == 77
    assert info.value.location.offset == len(serialize_binary(es[:77]))


def test_shorter_list_is_a_changed_prefix() -> None:
    r1 = appraise_measurement_list(serialize_ascii(entries(10)))
    with pytest.raises(ImaPrefixChanged, match="truncated or the host rebooted"):
        appraise_measurement_list(serialize_ascii(entries(5)), state=r1.state)


def test_partial_record_is_consumed_once_complete() -> None:
    full = serialize_binary(entries(6))
    r1 = appraise_measurement_list(full[:-5])
    assert r1.entry_count == 5 and r1.findings
    r2 = appraise_measurement_list(full, state=r1.state)
    assert r2.entry_count == 6 and r2.findings == () and r2.claims.first_index == 5
    assert r2.claims.pcr_values == appraise_measurement_list(full).claims.pcr_values


def test_a_bank_missing_from_the_state_is_refused() -> None:
    r1 = appraise_measurement_list(serialize_ascii(entries(3)), banks=("sha1",))
    with pytest.raises(InputError, match="no running value for bank sha256"):
        appraise_measurement_list(serialize_ascii(entries(4)), state=r1.state, banks=("sha256",))


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(InputError, match="IMA state"):
        ImaState.from_json({"entry_count": 1})


def test_a_state_with_a_hash_size_of_no_bank_is_refused() -> None:
    """Found by tests/security/test_parser_fuzz.py::test_persisted_ima_state: ``"hash_size": true``
    (int(True) == 1) reached the binary parser's header table as a KeyError."""
    r1 = appraise_measurement_list(serialize_ascii(entries(3)))
    doc = {**r1.state.to_json(), "format": "binary", "hash_size": True}
    with pytest.raises(InputError, match="no template-hash bank has 1-byte hashes"):
        ImaState.from_json(doc)
