"""Warnings that would repeat every round are logged once per state change; a reload that changes
nothing is not a WARNING."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from floodlight_trust.manager.reload import reload_policy
from tests.support.world import World


def test_an_agent_that_stays_down_is_logged_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # A host registered without an agent URL (agent-initiated): a VM-initiated round cannot reach it
    # and fails the same way every round.
    host = world.unique("no-agent-host")
    vm = world.service.vm
    vm.storage.hosts.add(host, None, None, at=vm.now())
    caplog.set_level(logging.INFO, logger="floodlight_trust.manager.reattest")
    for _ in range(4):
        result = world.service.scheduler.run_host(host)
        assert not result.trusted and "has no agent URL" in result.reasons[0].message
    failed = [r for r in caplog.records if r.getMessage().startswith(f"re-attestation of {host} failed")]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR


def test_a_no_op_policy_reload_logs_at_info(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="floodlight_trust.manager.reload")
    vm = world.service.vm
    report = reload_policy(vm, vm.policy, dry_run=False, actor="test")
    assert report.revoked_serials == []
    records = [r for r in caplog.records if r.name == "floodlight_trust.manager.reload"]
    assert [r.getMessage() for r in records] == [f"policy {vm.policy.version} reloaded: unchanged"]
    assert all(r.levelno == logging.INFO for r in records)


def test_a_simulated_root_is_warned_about_once_per_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from floodlight_trust.evidence.dcap import TrustAnchor
    from floodlight_trust.sgxsim import SimulatedPlatform

    platform = SimulatedPlatform.create(tmp_path / "platform")  # a fresh root, never seen before
    caplog.set_level(logging.WARNING, logger="floodlight_trust.evidence.dcap")
    anchors = [TrustAnchor.unsafe_simulated(platform.root_cert) for _ in range(3)]
    assert all(a.simulated for a in anchors)
    warned = [r for r in caplog.records if "SIMULATED SGX root CA" in r.getMessage()]
    assert len(warned) == 1
