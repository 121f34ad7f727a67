"""Enrollment and reload-policy judge with the same judge: on the same enclave and the same new
policy, the VNF that reload revokes is the VNF that enrollment refuses, for the same reasons
(including the certificate profile's admin and controller identities, which the first reload did not
check). In process: the VM's own state, its agents called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust.manager.reload import judge_hosts, judge_vnfs, reload_policy
from policy_lang import compile_policy_text
from tests.support.deployment import FILES, deployment, policy_text


def _with_profile(extra: str) -> str:
    text = policy_text()
    assert "certificate { validity = 1h }" in text
    return text.replace("certificate { validity = 1h }", f"certificate {{ validity = 1h {extra} }}")


@pytest.mark.parametrize(
    "extra", ['san_uri = "urn:ftrust:admin:root"', 'san_uri = "urn:ftrust:controller:c1"'], ids=["admin", "controller"]
)
def test_reload_revokes_what_enrollment_refuses_for_the_same_reasons(tmp_path: Path, extra: str) -> None:
    dep = deployment(tmp_path)
    dep.add_host("h1", FILES, "vnf-a")
    vm = dep.vm
    assert vm.attest_host("h1", actor="test").trusted
    issued = vm.enroll("h1", "vnf-a", actor="test")
    assert issued.allowed, issued.reasons
    new = compile_policy_text(_with_profile(extra))

    [judged] = judge_vnfs(vm, new)  # the dry-run judgement of the live enrollment
    assert not judged.allowed and judged.serial == issued.serial
    vm.set_policy(new)
    refused = vm.enroll("h1", "vnf-a", actor="test")
    assert not refused.allowed
    denied_by_reload = [(r.rule, r.message) for r in judged.reasons if r.denies]
    denied_by_enroll = [(r.rule, r.message) for r in refused.reasons if r.denies]
    assert denied_by_reload == denied_by_enroll and denied_by_reload[0][0] == "policy.profile"


def test_reload_of_the_same_policy_admits_what_enrollment_admits_and_records_nothing(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    dep.add_host("h1", FILES, "vnf-a")
    vm = dep.vm
    assert vm.attest_host("h1", actor="test").trusted
    assert vm.enroll("h1", "vnf-a", actor="test").allowed
    audit_before = len(vm.storage.audit.records())
    [host] = judge_hosts(vm, vm.policy)  # fresh evidence, judged by the host judge, nothing recorded
    assert host.trusted and host.ima_entries == len(FILES)
    [vnf] = judge_vnfs(vm, vm.policy)
    assert vnf.allowed and not [r for r in vnf.reasons if r.denies]
    assert len(vm.storage.audit.records()) == audit_before
    report = reload_policy(vm, vm.policy, dry_run=True, actor="test")
    assert report.revocations == [] and len(vm.storage.audit.records()) == audit_before
