"""TPM-anchored hosts over real HTTPS on loopback: the VM registers a host's TPM (swtpm) through its
agent, then every round's IMA list must replay to the PCR 10 the TPM quoted. The attacks are
performed for real (root rewriting the list, another TPM's AK, a missing TPM quote) and refused with
their reason codes; nothing is pinned or trusted when registration fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.service import Agent
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence.ima import make_entry, serialize_ascii, template_hash
from floodlight_trust.evidence.tpm.ek import read_certificates
from floodlight_trust.evidence.tpm.registration import EndorsementPolicy
from floodlight_trust.manager.tpm_attestation import TpmSettings
from floodlight_trust.protocol.wsgi import HttpServer
from tests.manager.conftest import HOST_FILES, World
from tests.tpm_support import SimulatedKernel


@dataclass
class TpmHost:
    name: str
    kernel: SimulatedKernel
    agent: Agent
    server: HttpServer
    ima_file: Path
    sim: swtpm.Swtpm

    def sync_list(self, records: list | None = None) -> None:  # type: ignore[type-arg]
        """The IMA list the agent reads (securityfs on a real host): the kernel's, or root's forgery."""
        self.ima_file.write_bytes(serialize_ascii(records if records is not None else self.kernel.records))


def _roots(state: Path) -> list:  # type: ignore[type-arg]
    return [c for p in swtpm.manufacturer_certificates(state) for c in read_certificates(p.read_bytes(), p.name)]


@pytest.fixture()
def tpm_host(world: World, swtpm_state: Path) -> Iterator[TpmHost]:
    world.service.vm.tpm_settings = TpmSettings(EndorsementPolicy(manufacturer_cas=_roots(swtpm_state)))
    with swtpm.Swtpm(swtpm_state) as sim:
        tpm = Tpm2ToolsTpm(sim.tcti)
        kernel = SimulatedKernel(tpm)
        kernel.records = []
        for path, digest in HOST_FILES.items():  # the host's boot: the kernel measures, PCR 10 follows
            record = make_entry(path, digest)
            kernel.records.append(record)
            tpm.extend(10, {b: template_hash(record, b) for b in ("sha1", "sha256")})
        plain = world.start_host(files=HOST_FILES)  # a machine of its own, registered by the admin
        plain.agent.tpm = tpm  # ... whose agent now anchors its evidence in the TPM
        host = TpmHost(plain.name, kernel, plain.agent, plain.server, plain.ima_file, sim)
        host.sync_list()
        yield host


def _audit_rows(world: World, host: str, action: str) -> list[dict]:  # type: ignore[type-arg]
    with world.service.vm.db.transaction() as tx:
        rows = tx.execute(
            "SELECT allowed, reasons_json FROM manager_audit WHERE host = ? AND action = ?", (host, action)
        ).fetchall()
    return [{"allowed": bool(r["allowed"]), "reasons": json.loads(r["reasons_json"])} for r in rows]


def _rules(verdict: dict, level: str = "deny") -> list[str]:  # type: ignore[type-arg]
    return [r["rule"] for r in verdict["reasons"] if r.get("level", "deny") == level]


def test_registered_tpm_anchors_every_round(world: World, tpm_host: TpmHost) -> None:
    doc = world.admin.register_tpm(tpm_host.name)
    assert doc["registered"] is True and doc["ek"]["how"] == "certificate" and doc["activated"] is True
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is True, verdict["reasons"]
    # the next round, after the kernel measured one more allowed file, verifies incrementally
    tpm_host.kernel.records.append(tpm_host.kernel.records[1])  # re-measured containerd (same file, same digest)
    r = tpm_host.kernel.records[-1]
    tpm_host.kernel.tpm.extend(10, {b: template_hash(r, b) for b in ("sha1", "sha256")})
    tpm_host.sync_list()
    again = world.admin.attest(tpm_host.name)
    assert again["trusted"] is True, again["reasons"]


def test_attack_root_rewrites_the_ima_list_and_pcr_10_exposes_it(world: World, tpm_host: TpmHost) -> None:
    world.admin.register_tpm(tpm_host.name)
    assert world.admin.attest(tpm_host.name)["trusted"] is True
    hidden = tpm_host.kernel.measure("/tmp/.x/cryptominer", b"unknown binary")  # the kernel measures it
    forged = [r for i, r in enumerate(tpm_host.kernel.records) if i != hidden]  # root deletes its line
    tpm_host.sync_list(forged)
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False
    assert _rules(verdict) == ["host.tpm.ima_pcr10"], verdict["reasons"]
    message = next(r["message"] for r in verdict["reasons"] if r["rule"] == "host.tpm.ima_pcr10")
    assert f"first differing entry: entry {hidden}" in message
    assert [r["allowed"] for r in _audit_rows(world, tpm_host.name, "attest-host")][-1] is False
    host = next(h for h in world.admin.hosts() if h["name"] == tpm_host.name)
    assert host["status"] == "untrusted"


def test_attack_a_quote_signed_by_another_tpm_is_refused(
    world: World, tpm_host: TpmHost, other_swtpm_state: Path
) -> None:
    world.admin.register_tpm(tpm_host.name)
    with swtpm.Swtpm(other_swtpm_state) as other:
        tpm_host.agent.tpm = Tpm2ToolsTpm(other.tcti)  # the host now answers with another TPM's AK
        verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False
    assert "host.tpm.signature" in _rules(verdict), verdict["reasons"]


def test_attack_dropping_the_tpm_quote_is_refused(world: World, tpm_host: TpmHost) -> None:
    world.admin.register_tpm(tpm_host.name)
    tpm_host.agent.tpm = None  # evidence without a TPM quote, from a host whose TPM is registered
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False and _rules(verdict) == ["host.tpm.missing"]


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
        tpm_host.kernel.records.append(r)
        tpm.extend(10, {b: template_hash(r, b) for b in ("sha1", "sha256")})
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
    from tests.manager.conftest import policy_text

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
