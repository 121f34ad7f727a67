"""TPM-anchored hosts over real HTTPS on loopback: the VM registers a host's TPM (swtpm) through its
agent, then every round's IMA list must replay to the PCR 10 the TPM quoted; nothing is pinned when
registration fails. The attacks on TPM-anchored hosts are in tests/security/test_tpm_anchoring.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence.tpm.registration import EndorsementPolicy
from floodlight_trust.manager.tpm_attestation import TpmSettings
from tests.support.tpm_hosts import TpmHost
from tests.support.tpm_hosts import tpm_host as make_tpm_host
from tests.support.world import HOST_FILES, World


@pytest.fixture()
def tpm_host(world: World, swtpm_state: Path) -> Iterator[TpmHost]:
    with make_tpm_host(world, swtpm_state, HOST_FILES) as host:
        yield host


def _audit_rows(world: World, host: str, action: str) -> list[dict]:  # type: ignore[type-arg]
    rows = world.service.vm.storage.query(
        "SELECT allowed, reasons_json FROM manager_audit WHERE host = ? AND action = ?", (host, action)
    )
    return [{"allowed": bool(r["allowed"]), "reasons": json.loads(r["reasons_json"])} for r in rows]


def _rules(verdict: dict, level: str = "deny") -> list[str]:  # type: ignore[type-arg]
    return [r["rule"] for r in verdict["reasons"] if r.get("level", "deny") == level]


def test_registered_tpm_anchors_every_round(world: World, tpm_host: TpmHost) -> None:
    doc = world.admin.register_tpm(tpm_host.name)
    assert doc["registered"] is True and doc["ek"]["how"] == "certificate" and doc["activated"] is True
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is True, verdict["reasons"]
    # the next round, after the kernel measured one more allowed file, verifies incrementally
    tpm_host.measure_record(tpm_host.kernel.records[1])  # re-measured containerd (same file, same digest)
    tpm_host.sync_list()
    again = world.admin.attest(tpm_host.name)
    assert again["trusted"] is True, again["reasons"]


def test_a_reboot_is_named_and_the_list_appraised_from_its_start(world: World, tpm_host: TpmHost) -> None:
    world.admin.register_tpm(tpm_host.name)
    assert world.admin.attest(tpm_host.name)["trusted"] is True
    tpm_host.sim.restart()  # power cycle: PCRs reset, resetCount rises
    tpm = Tpm2ToolsTpm(tpm_host.sim.tcti)
    tpm_host.agent.tpm = tpm
    tpm_host.kernel.tpm = tpm
    records = list(tpm_host.kernel.records[:2])
    tpm_host.kernel.records = []
    for r in records:  # the new boot measures again from the start
        tpm_host.measure_record(r)
    tpm_host.sync_list()
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is True, verdict["reasons"]
    assert "host.tpm.reboot" in _rules(verdict, "note")


def test_registration_refused_without_a_trusted_ek_and_nothing_pinned(world: World, tpm_host: TpmHost) -> None:
    world.service.vm.tpm_settings = TpmSettings(EndorsementPolicy())  # no manufacturer roots configured
    with pytest.raises(FtrustError) as info:
        world.admin.register_tpm(tpm_host.name)
    assert "no chain" in str(info.value)
    assert world.service.vm.host_attestation.tpm_registry.get(tpm_host.name) is None
    rows = _audit_rows(world, tpm_host.name, "register-tpm")
    assert rows and rows[-1]["allowed"] is False
    # without a pin the host is judged as before (its TPM quote is not checked), as the operator chose
    assert world.admin.attest(tpm_host.name)["trusted"] is True


def test_unknown_host_cannot_register_a_tpm(world: World) -> None:
    with pytest.raises(FtrustError):
        world.admin.register_tpm("no-such-host")
    with pytest.raises(FtrustError):
        world.anonymous.register_tpm("no-such-host")


def test_host_policy_requiring_tpm_and_unchanged_boot_pcrs(world: World, tpm_host: TpmHost) -> None:
    from policy_lang import compile_policy_text
    from tests.support.world import policy_text

    vm = world.service.vm
    before = vm.policy
    strict = policy_text().replace(
        "    integrity_enclave = host_integrity\n",
        '    integrity_enclave = host_integrity\n    tpm = true\n    boot_pcrs = "unchanged"\n',
    )
    vm.set_policy(compile_policy_text(strict, filename="strict.policy"))
    try:
        world.admin.register_tpm(tpm_host.name)
        first = world.admin.attest(tpm_host.name)
        assert first["trusted"] is True, first["reasons"]  # records the boot PCRs baseline
        assert world.admin.attest(tpm_host.name)["trusted"] is True  # unchanged
        plain = world.start_host(files=HOST_FILES)  # a host without a TPM
        verdict = world.admin.attest(plain.name)
        assert verdict["trusted"] is False and _rules(verdict) == ["tpm", "boot_pcrs"]  # every reason
        assert next(r for r in verdict["reasons"] if r["rule"] == "tpm")["location"].startswith("strict.policy:")
        tpm_host.kernel.tpm.extend(4, {"sha256": bytes(32)})  # the boot chain measured something else
        changed = world.admin.attest(tpm_host.name)
        assert changed["trusted"] is False and _rules(changed) == ["boot_pcrs"]
        assert any(
            "sha256 PCR 4 is" in r["message"] and "at registration it was" in r["message"] for r in changed["reasons"]
        )
    finally:
        vm.set_policy(before)
