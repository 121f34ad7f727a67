"""Whole-list rules (`require measured`, `boot_aggregate`) on incremental IMA rounds.

The Verification Manager appraises only what a host appended since the last round; the host
policy's :class:`HostMeasuredState`, carried with the IMA state, makes those rounds judge as the
whole list would be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from floodlight_trust.claims import ClaimSet
from floodlight_trust.evidence.ima import ImaState, appraise_measurement_list, format_ascii_line, make_entry
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.storage.records import HostRecord
from floodlight_trust.storage.sqlite import SqliteStorage
from policy_lang import HostMeasuredState, compile_policy_text

AT = datetime(2025, 6, 20, tzinfo=UTC)
BOOT = hashlib.sha256(b"boot").digest()
FILES = {
    "boot_aggregate": BOOT,
    "/usr/bin/containerd": hashlib.sha256(b"containerd").digest(),
    "/usr/bin/ftrust-agent": hashlib.sha256(b"agent").digest(),
    "/etc/hosts": hashlib.sha256(b"hosts").digest(),
}


def listing(files: list[tuple[str, bytes]]) -> bytes:
    return "".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in files).encode()


def policy_text(boot: bytes = BOOT) -> str:
    allow = "\n".join(f'    allow "{p}" digest in {{"{d.hex()}"}}' for p, d in FILES.items())
    return f"""
host h {{
{allow}
    boot_aggregate in {{"{boot.hex()}"}}
    require measured "/usr/bin/ftrust-agent"
    require measured "/usr/bin/*d"
}}
"""


ROUND_1 = [(p, d) for p, d in FILES.items() if p != "/etc/hosts"]
ROUND_2 = [*ROUND_1, ("/etc/hosts", FILES["/etc/hosts"]), ("/usr/bin/containerd", FILES["/usr/bin/containerd"])]


def test_a_required_file_measured_in_round_1_still_counts_in_round_2() -> None:
    policy = compile_policy_text(policy_text())
    first = appraise_measurement_list(listing(ROUND_1))
    d1, state = policy.evaluate_host_round("h", ClaimSet(AT, ima=first.claims))
    assert d1.allowed and d1.reasons == ()
    assert state == HostMeasuredState(
        "h", policy.version, 3, frozenset({"/usr/bin/ftrust-agent", "/usr/bin/*d"}), BOOT.hex()
    )

    second = appraise_measurement_list(listing(ROUND_2), state=first.state)
    assert second.claims.first_index == 3 and list(second.claims.paths) == ["/etc/hosts", "/usr/bin/containerd"]
    d2, state2 = policy.evaluate_host_round("h", ClaimSet(AT, ima=second.claims), state)
    assert d2.allowed and d2.reasons == ()  # judged, not merely noted
    assert state2 is not None and state2.entries == 5
    # The state survives being persisted as JSON between rounds.
    assert HostMeasuredState.from_json(json.loads(json.dumps(state2.to_json()))) == state2

    # Without the state, the round cannot be judged on its own: a note says so, nothing is claimed.
    alone = policy.evaluate_host("h", ClaimSet(AT, ima=second.claims))
    assert [(r.rule, r.level) for r in alone.reasons] == [("boot_aggregate", "note"), ("require_measured", "note")]


def test_a_full_list_missing_a_required_file_is_denied_and_an_incremental_round_too() -> None:
    policy = compile_policy_text(policy_text())
    only_boot = [ROUND_1[0], ROUND_1[1]]
    first = appraise_measurement_list(listing(only_boot))
    d1, state = policy.evaluate_host_round("h", ClaimSet(AT, ima=first.claims))
    assert [r.message for r in d1.failures] == ["required file /usr/bin/ftrust-agent was not measured"]
    # Carried on (a caller that keeps going anyway), the later round still misses it.
    second = appraise_measurement_list(listing([*only_boot, ("/etc/hosts", FILES["/etc/hosts"])]), state=first.state)
    d2, _ = policy.evaluate_host_round("h", ClaimSet(AT, ima=second.claims), state)
    assert [r.message for r in d2.failures] == [
        "required file /usr/bin/ftrust-agent was not measured (entries 0..2 of the list)"
    ]


def test_boot_aggregate_is_judged_from_the_state_and_a_mismatched_state_is_refused() -> None:
    other = hashlib.sha256(b"another boot").digest()
    strict = compile_policy_text(policy_text(other))
    first = appraise_measurement_list(listing(ROUND_1))
    d1, _ = strict.evaluate_host_round("h", ClaimSet(AT, ima=first.claims))
    assert [r.rule for r in d1.failures] == ["boot_aggregate"]

    policy = compile_policy_text(policy_text())
    _, state = policy.evaluate_host_round("h", ClaimSet(AT, ima=first.claims))
    assert state is not None
    second = appraise_measurement_list(listing(ROUND_2), state=first.state)
    # The same state judged by a changed policy: its boot_aggregate fact is re-checked, not trusted.
    d_strict, _ = strict.evaluate_host_round("h", ClaimSet(AT, ima=second.claims), state)
    assert [r.rule for r in d_strict.failures] == ["evidence"]
    assert "appraise the full list" in d_strict.failures[0].message
    # A state that does not end where the claims start is refused, never silently applied.
    stale = dataclasses.replace(state, entries=2)
    d_stale, after = policy.evaluate_host_round("h", ClaimSet(AT, ima=second.claims), stale)
    assert not d_stale.allowed and after is None
    assert "covers 2 entries" in d_stale.failures[0].message
    # Claims whose boot_aggregate differs from the state's are not the same boot.
    changed = dataclasses.replace(second.claims, boot_aggregate=other.hex())
    d_changed, _ = policy.evaluate_host_round("h", ClaimSet(AT, ima=changed), state)
    assert [r.rule for r in d_changed.failures] == ["boot_aggregate"]
    assert "changed from" in d_changed.failures[0].message


def _record(vm: VerificationManager, state_json: str | None) -> HostRecord:
    return HostRecord(
        "host-1", None, "h", "trusted", None, None, None, None, vm.policy_version, [], state_json, 0, False
    )


def test_the_verification_manager_carries_the_state_with_the_ima_state(tmp_path: Path) -> None:
    policy = compile_policy_text(policy_text())
    vm = VerificationManager(storage=SqliteStorage(tmp_path / "vm.db"), ca=None, policy=policy, anchors=[])
    state_json, entries, reasons = vm.host_attestation.appraise_ima(None, "host-1", "h", listing(ROUND_1), AT)
    assert reasons == [] and entries == 3 and state_json is not None
    persisted = json.loads(state_json)
    assert persisted["host_policy_state"]["measured"] == ["/usr/bin/*d", "/usr/bin/ftrust-agent"]
    assert ImaState.from_json(persisted).entry_count == 3  # the IMA state reads past the extra key

    vm.host_attestation._ima_states.clear()  # a VM restart: resume from what was persisted with the host
    state_json2, entries2, reasons2 = vm.host_attestation.appraise_ima(
        _record(vm, state_json), "host-1", "h", listing(ROUND_2), AT
    )
    assert reasons2 == [] and entries2 == 5 and state_json2 is not None
    assert json.loads(state_json2)["host_policy_state"]["entries"] == 5

    # A list whose boot_aggregate changed (a reboot or a forgery) is caught by the prefix check.
    rebooted = [("boot_aggregate", hashlib.sha256(b"other boot").digest()), *ROUND_2[1:]]
    _, _, reasons3 = vm.host_attestation.appraise_ima(_record(vm, state_json2), "host-1", "h", listing(rebooted), AT)
    assert [r.rule for r in reasons3] == ["ima.prefix"]


def test_a_state_persisted_without_the_whole_list_facts_is_appraised_in_full_once(tmp_path: Path) -> None:
    policy = compile_policy_text(policy_text())
    vm = VerificationManager(storage=SqliteStorage(tmp_path / "vm.db"), ca=None, policy=policy, anchors=[])
    state_json, _, _ = vm.host_attestation.appraise_ima(None, "host-1", "h", listing(ROUND_1), AT)
    assert state_json is not None
    legacy = json.loads(state_json)
    del legacy["host_policy_state"]  # what a VM before this change persisted
    vm.host_attestation._ima_states.clear()
    state_json2, entries, reasons = vm.host_attestation.appraise_ima(
        _record(vm, json.dumps(legacy)), "host-1", "h", listing(ROUND_2), AT
    )
    assert reasons == [] and entries == 5 and state_json2 is not None
    assert json.loads(state_json2)["host_policy_state"]["entries"] == 5
