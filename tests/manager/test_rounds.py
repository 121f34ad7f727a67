"""Re-attestation rounds in process: reason levels, incremental IMA transfer, renewal, EPID pinning."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from floodlight_trust.agent.backends.sim import INTEGRITY_ENCLAVE_IMAGE
from floodlight_trust.errors import UnauthenticatedEvidence
from floodlight_trust.sgxsim import measure_enclave_image
from policy_lang import compile_policy_text
from tests.support.deployment import FILES, Deployment, deployment, policy_text

REQUIRE = '    require measured "/usr/bin/ftrust-agent"'


@pytest.fixture()
def dep(tmp_path: Path) -> Deployment:
    return deployment(tmp_path, policy_text(REQUIRE))


def test_notes_are_kept_apart_from_denials_in_verdicts_audit_and_revocation_texts(tmp_path: Path) -> None:
    # The host's integrity enclave is accepted as simulated: an INSECURE note on every host verdict.
    integrity = measure_enclave_image(INTEGRITY_ENCLAVE_IMAGE).hex()
    text = policy_text(REQUIRE + "\n    integrity_enclave = hi") + (
        f'enclave hi {{\n    identity: mrenclave in {{"{integrity}"}}\n    allow_simulated = true\n}}\n'
    )
    dep = deployment(tmp_path, text)
    dep.add_host("h1", FILES, "vnf-a")
    vm = dep.vm
    assert vm.attest_host("h1", actor="test").trusted
    assert vm.enroll("h1", "vnf-a", actor="test").allowed
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    verdict = vm.attest_host("h1", actor="test")  # incremental round, still judged as the whole list
    assert verdict.trusted
    notes = [r for r in verdict.reasons if r.level == "note"]
    assert any("INSECURE" in r.message and "SIMULATED" in r.message for r in notes)
    assert not any("full list only" in r.message for r in verdict.reasons)
    assert all(r.level == "note" for r in verdict.reasons)
    doc = verdict.to_json()
    assert {r["level"] for r in doc["reasons"]} == {"note"}
    [record] = [a for a in vm.storage.audit.records() if a.id == verdict.audit_id]
    assert any(r["level"] == "note" and "INSECURE" in r["message"] for r in record.reasons)

    dep.append("h1", "/usr/bin/dropper", b"\x07" * 32)
    bad = vm.attest_host("h1", actor="test")
    assert not bad.trusted and bad.revoked_serials
    denied = [r for r in bad.reasons if r.level == "deny"]
    assert denied and any("/usr/bin/dropper" in r.message for r in denied)
    assert any(r.level == "note" for r in bad.reasons)  # still reported, as a note
    [revoke] = [a for a in vm.storage.audit.records() if a.action == "revoke"]
    text = revoke.reasons[0]["message"]
    assert text.startswith("host became untrustworthy: ") and "/usr/bin/dropper" in text
    assert "full list only" not in text and "SIMULATED" not in text
    [enrollment] = [e for e in vm.storage.enrollments.enrollments(host="h1")]
    assert enrollment.status == "revoked"


def test_an_allowed_enrollment_carries_its_notes(dep: Deployment) -> None:
    dep.add_host("h1", FILES, "vnf-a")
    assert dep.vm.attest_host("h1", actor="test").trusted
    result = dep.vm.enroll("h1", "vnf-a", actor="test")
    assert result.allowed
    assert [r.level for r in result.reasons] == ["note"]
    assert "SIMULATED" in result.reasons[0].message
    assert result.to_json()["reasons"][0]["level"] == "note"


def test_later_rounds_transfer_only_the_new_tail_of_the_ima_list(dep: Deployment) -> None:
    agent = dep.add_host("h1", FILES)
    vm = dep.vm
    full = dep.ima_files["h1"].stat().st_size
    assert vm.attest_host("h1", actor="test").trusted
    assert agent.ima_bytes_sent == [full]
    before = dep.ima_files["h1"].stat().st_size
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    tail = dep.ima_files["h1"].stat().st_size - before
    second = vm.attest_host("h1", actor="test")
    assert second.trusted and second.ima_entries == len(FILES) + 1
    assert agent.ima_bytes_sent == [full, tail]  # only the appended entry crossed the wire
    third = vm.attest_host("h1", actor="test")  # nothing new: an empty tail
    assert third.trusted and agent.ima_bytes_sent[-1] == 0
    [record] = [a for a in vm.storage.audit.records() if a.id == second.audit_id]
    whole = dep.ima_files["h1"].read_bytes()
    assert record.evidence["ima_offset"] == before and record.evidence["ima_bytes_sent"] == tail
    assert record.evidence["ima_list_sha256"] == hashlib.sha256(whole).hexdigest()  # the whole list


def test_a_changed_prefix_is_caught_by_the_binding_and_named_from_the_whole_list(dep: Deployment) -> None:
    agent = dep.add_host("h1", FILES, "vnf-a")
    vm = dep.vm
    assert vm.attest_host("h1", actor="test").trusted
    assert vm.enroll("h1", "vnf-a", actor="test").allowed
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    assert vm.attest_host("h1", actor="test").trusted
    # Rewrite the second entry (already transferred and appraised), keeping the length.
    path = dep.ima_files["h1"]
    good = FILES["/usr/bin/ftrust-agent"].hex()
    path.write_text(path.read_text().replace(good, hashlib.sha256(b"evil").hexdigest(), 1))
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    sent_before = len(agent.ima_bytes_sent)
    verdict = vm.attest_host("h1", actor="test")
    assert not verdict.trusted and verdict.revoked_serials
    denied = [r for r in verdict.reasons if r.level == "deny"]
    assert [r.rule for r in denied] == ["ima.prefix"]
    assert "entry 1, appraised in an earlier round, has changed" in denied[0].message
    # The tail was refused by the binding (no record), then the whole list was fetched and judged.
    assert agent.ima_bytes_sent[sent_before + 1] == path.stat().st_size
    assert [a.allowed for a in vm.storage.audit.records() if a.action == "attest-host"][-1] is False
    assert len([a for a in vm.storage.audit.records() if a.action == "attest-host"]) == 3  # no record of the tail


def test_a_restarted_vm_continues_the_persisted_sha256_state_with_the_tail_only(dep: Deployment) -> None:
    agent = dep.add_host("h1", FILES)
    assert dep.vm.attest_host("h1", actor="test").trusted
    appraised = dep.ima_files["h1"].stat().st_size
    vm = dep.restart()  # same state, empty memory
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    size = dep.ima_files["h1"].stat().st_size
    first = vm.attest_host("h1", actor="test")
    assert first.trusted and agent.ima_bytes_sent[-1] == size - appraised  # the tail, bound through the state
    assert first.ima_entries == len(FILES) + 1
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    second = vm.attest_host("h1", actor="test")
    assert second.trusted and agent.ima_bytes_sent[-1] == dep.ima_files["h1"].stat().st_size - size
    vm = dep.restart()  # twice in a row: the state saved by a tail-only round resumes as well
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    third = vm.attest_host("h1", actor="test")
    assert third.trusted and third.ima_entries == len(FILES) + 3 and agent.ima_bytes_sent[-1] < appraised


def test_a_state_persisted_without_its_sha256_state_asks_for_the_whole_list_once(dep: Deployment) -> None:
    """As a state written before SHA-256 states were saved (or one that does not check): the whole
    list once, appraised incrementally (prefix checked by its SHA-256), then tails again."""
    agent = dep.add_host("h1", FILES)
    assert dep.vm.attest_host("h1", actor="test").trusted
    [row] = dep.rows("SELECT ima_state_json FROM manager_hosts WHERE name = 'h1'")
    saved = json.loads(row[0])
    assert "prefix_state" in saved
    for bad in (None, "00" * 40, saved["prefix_state"][:-2] + "00"):  # absent, wrong length, wrong digest
        doc = {k: v for k, v in saved.items() if k != "prefix_state"} | ({"prefix_state": bad} if bad else {})
        con = sqlite3.connect(dep.db_path)
        with con:
            con.execute("UPDATE manager_hosts SET ima_state_json = ? WHERE name = 'h1'", (json.dumps(doc, sort_keys=True),))
        con.close()
        vm = dep.restart()
        dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
        size = dep.ima_files["h1"].stat().st_size
        first = vm.attest_host("h1", actor="test")
        assert first.trusted and agent.ima_bytes_sent[-1] == size  # whole list, appraised incrementally
        dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
        second = vm.attest_host("h1", actor="test")
        assert second.trusted and agent.ima_bytes_sent[-1] == dep.ima_files["h1"].stat().st_size - size
        [row] = dep.rows("SELECT ima_state_json FROM manager_hosts WHERE name = 'h1'")
        saved = json.loads(row[0])


def test_a_truncated_list_is_named(dep: Deployment) -> None:
    dep.add_host("h1", FILES)
    assert dep.vm.attest_host("h1", actor="test").trusted
    path = dep.ima_files["h1"]
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    verdict = dep.vm.attest_host("h1", actor="test")
    assert not verdict.trusted
    [denied] = [r for r in verdict.reasons if r.level == "deny"]
    assert denied.rule == "ima.prefix" and "truncated or the host rebooted" in denied.message


def test_pushed_evidence_with_an_unknown_offset_is_refused(dep: Deployment) -> None:
    agent = dep.add_host("h1", FILES)
    nonce = bytes.fromhex(dep.vm.issue_nonce("host", "h1")["nonce"])
    evidence = agent.agent.host_evidence(nonce, 10)
    # Pushed evidence that proves nothing is refused and recorded nowhere.
    with pytest.raises(UnauthenticatedEvidence) as refused:
        dep.vm.attest_host_evidence(evidence, actor="agent")
    assert [r["rule"] for r in refused.value.reasons] == ["protocol.ima_offset"]


def test_rounds_re_attest_every_vnf_but_renew_only_when_little_validity_is_left(tmp_path: Path) -> None:
    from datetime import timedelta

    from floodlight_trust import clock
    from floodlight_trust.manager.reattest import ReattestScheduler

    offset = [timedelta()]
    from floodlight_trust.manager.context import ManagerSettings

    dep = deployment(tmp_path, settings=ManagerSettings(renew_before_seconds=1800), now=lambda: clock.now() + offset[0])
    dep.add_host("h1", FILES, "vnf-a", "vnf-b")
    vm = dep.vm
    assert vm.attest_host("h1", actor="test").trusted
    first = {v: vm.enroll("h1", v, actor="test").serial for v in ("vnf-a", "vnf-b")}
    rounds = ReattestScheduler(vm, interval_seconds=0)
    issued_before = len(vm.storage.enrollments.enrollments(host="h1"))
    [h] = rounds.run_round().hosts
    assert h.trusted and h.renewed == {} and h.kept == first  # attested again, nothing issued
    assert len(vm.storage.enrollments.enrollments(host="h1")) == issued_before
    checks = [a for a in vm.storage.audit.records() if a.action == "reattest-vnf"]
    assert len(checks) == 2 and all(a.allowed and a.evidence["certificate_kept"] for a in checks)
    assert h.to_json()["kept"] == first

    # A changed enclave is still caught at the next round, and its certificate revoked.
    dep.backends["h1"].add_enclave("vnf-b", b"another image")
    [h] = rounds.run_round().hosts
    assert "vnf-b" in h.refused and h.kept == {"vnf-a": first["vnf-a"]}
    assert any("mrenclave" in r.message for r in h.refused["vnf-b"] if r.level == "deny")
    assert first["vnf-b"] in h.revoked_serials

    # Less than renew_before left: the next round renews.
    offset[0] = timedelta(minutes=31)
    [h] = rounds.run_round().hosts
    assert set(h.renewed) == {"vnf-a"} and h.renewed["vnf-a"] != first["vnf-a"] and h.kept == {}
    [again] = rounds.run_round().hosts
    assert again.kept == h.renewed  # the fresh certificate is kept again


def test_a_prefix_held_only_by_its_hash_is_asked_for_whole_when_it_must_be_judged_again(dep: Deployment) -> None:
    """After a restart the VM holds the list's prefix only by its SHA-256 state; under a new policy
    version the whole list must be judged again, so the next challenge asks for all of it."""
    agent = dep.add_host("h1", FILES)
    assert dep.vm.attest_host("h1", actor="test").trusted
    vm = dep.restart()
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    assert vm.attest_host("h1", actor="test").trusted
    size = dep.ima_files["h1"].stat().st_size
    assert agent.ima_bytes_sent[-1] < size  # tail only: the prefix is held by its hash
    vm.set_policy(compile_policy_text(dep.policy + "\n# version 2\n"))
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    again = vm.attest_host("h1", actor="test")
    assert again.trusted and again.ima_entries == len(FILES) + 2
    assert agent.ima_bytes_sent[-1] == dep.ima_files["h1"].stat().st_size  # the whole list, judged anew
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    assert vm.attest_host("h1", actor="test").trusted and agent.ima_bytes_sent[-1] < size  # tails again


def test_routine_rounds_commit_without_a_flush_and_every_change_of_trust_with_one(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trusted host's next trusted round only moves its IMA state forward: committed without
    waiting for the flush (a power failure loses at most that, and the VM resumes from the round
    before). Its first trusted round, and a round that turns it untrusted and revokes, wait for it."""
    dep.add_host("h1", FILES, "vnf-a")
    vm = dep.vm
    flushed: list[bool] = []
    engine = type(vm.storage)
    real = engine.transaction

    def transaction(self, *, durable: bool = True):  # type: ignore[no-untyped-def]
        flushed.append(durable)
        return real(self, durable=durable)

    monkeypatch.setattr(engine, "transaction", transaction)
    assert vm.attest_host("h1", actor="test").trusted
    first = flushed[-1]
    assert vm.enroll("h1", "vnf-a", actor="test").allowed
    dep.append("h1", "/usr/bin/runc", FILES["/usr/bin/runc"])
    assert vm.attest_host("h1", actor="test").trusted
    routine = flushed[-1]
    dep.append("h1", "/usr/bin/dropper", hashlib.sha256(b"dropper").digest())
    verdict = vm.attest_host("h1", actor="test")
    assert not verdict.trusted and verdict.revoked_serials
    assert (first, routine, flushed[-1]) == (True, False, True)
    [row] = dep.rows("SELECT status FROM manager_hosts WHERE name = 'h1'")
    assert row["status"] == "untrusted"
