"""Issue 16 (the paper's stated weakness): root on a container host rewrote its IMA list to hide an
unknown binary, and the VM, which appraised whatever list the agent sent, kept the host trusted and
its VNFs' certificates valid. With the host's TPM registered, the attacks are performed for real
over HTTPS on loopback (swtpm as the host's TPM) and refused: the reason code, the host's status, the
certificate revoked (OCSP), and no TPM round recorded for forged evidence."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.evidence.ima import make_entry
from tests.support.attacks import count, ocsp_status
from tests.support.tpm_hosts import TpmHost
from tests.support.tpm_hosts import tpm_host as make_tpm_host
from tests.support.world import GOOD_IMAGE, HOST_FILES, World


@pytest.fixture()
def tpm_host(world: World, swtpm_state: Path) -> Iterator[TpmHost]:
    with make_tpm_host(world, swtpm_state, HOST_FILES) as host:
        yield host


def _deny_rules(verdict: dict) -> list[str]:  # type: ignore[type-arg]
    return [r["rule"] for r in verdict["reasons"] if r.get("level", "deny") == "deny"]


def _tpm_clock(world: World, host: str) -> str | None:
    rows = world.service.vm.storage.query("SELECT last_clock_json FROM manager_host_tpm WHERE host = ?", (host,))
    return rows[0][0] if rows else None


def test_root_hiding_a_binary_in_the_ima_list_is_exposed_by_pcr_10_and_revokes(world: World, tpm_host: TpmHost) -> None:
    world.admin.register_tpm(tpm_host.name)
    tpm_host.host.add_vnf("vnf-fw-tpm", GOOD_IMAGE)
    enrolled = world.admin.enroll(tpm_host.name, "vnf-fw-tpm")
    assert enrolled["allowed"], enrolled["reasons"]
    pem = enrolled["certificate_chain"][0]
    assert ocsp_status(world, pem) == ocsp.OCSPCertStatus.GOOD
    # an unknown binary runs: the kernel measures it into the list and PCR 10 ...
    hidden = len(tpm_host.kernel.records)
    tpm_host.measure_record(make_entry("/tmp/.x/cryptominer", hashlib.sha256(b"miner").digest()))
    # ... and root deletes its line before the agent reads the list (every template hash recomputes)
    tpm_host.sync_list([r for i, r in enumerate(tpm_host.kernel.records) if i != hidden])
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False
    assert _deny_rules(verdict) == ["host.tpm.ima_pcr10"]
    message = next(r["message"] for r in verdict["reasons"] if r["rule"] == "host.tpm.ima_pcr10")
    assert f"first differing entry: entry {hidden}" in message and "not what the kernel measured" in message
    assert (
        count(world, "SELECT COUNT(*) FROM manager_hosts WHERE name = ? AND status = 'untrusted'", tpm_host.name) == 1
    )
    assert (
        count(world, "SELECT COUNT(*) FROM manager_enrollments WHERE host = ? AND status = 'active'", tpm_host.name)
        == 0
    )
    assert (
        count(world, "SELECT COUNT(*) FROM manager_enrollments WHERE host = ? AND status = 'revoked'", tpm_host.name)
        >= 1
    )
    assert ocsp_status(world, pem) == ocsp.OCSPCertStatus.REVOKED


def test_a_quote_signed_by_another_tpm_is_refused_and_records_no_tpm_round(
    world: World, tpm_host: TpmHost, other_swtpm_state: Path
) -> None:
    world.admin.register_tpm(tpm_host.name)
    assert world.admin.attest(tpm_host.name)["trusted"] is True
    recorded = _tpm_clock(world, tpm_host.name)
    assert recorded is not None
    with swtpm.Swtpm(other_swtpm_state) as other:
        tpm_host.agent.tpm = Tpm2ToolsTpm(other.tcti)  # the host answers with another TPM's AK
        verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False and "host.tpm.signature" in _deny_rules(verdict)
    assert _tpm_clock(world, tpm_host.name) == recorded  # the forged quote's counters were not kept


def test_dropping_the_tpm_quote_from_a_registered_host_is_refused(world: World, tpm_host: TpmHost) -> None:
    world.admin.register_tpm(tpm_host.name)
    tpm_host.agent.tpm = None  # plain SGX evidence, as before TPM anchoring
    verdict = world.admin.attest(tpm_host.name)
    assert verdict["trusted"] is False and _deny_rules(verdict) == ["host.tpm.missing"]
    audit = world.service.vm.storage.query(
        "SELECT allowed, reasons_json FROM manager_audit WHERE host = ? AND action = 'attest-host' ORDER BY id DESC LIMIT 1",
        (tpm_host.name,),
    )
    assert audit[0][0] == 0 and "host.tpm.missing" in json.dumps(json.loads(audit[0][1]))


def test_a_stranger_cannot_register_or_re_register_a_host_tpm(world: World, tpm_host: TpmHost) -> None:
    from floodlight_trust.errors import FtrustError

    world.admin.register_tpm(tpm_host.name)
    pinned = world.service.vm.storage.query("SELECT ak_name FROM manager_host_tpm WHERE host = ?", (tpm_host.name,))
    with pytest.raises(FtrustError) as info:
        world.anonymous.register_tpm(tpm_host.name)
    assert info.value.exit_code != 0  # refused before anything is done (no admin certificate)
    assert world.service.vm.storage.query("SELECT ak_name FROM manager_host_tpm WHERE host = ?", (tpm_host.name,)) == pinned
