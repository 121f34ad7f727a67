"""Issue 8: SIGKILL the VM (`ftrust vm serve`) in the middle of re-attestation rounds with renewals in
flight, restart it, and check that no enrollment is lost and no certificate is issued twice or
without its enrollment record."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import Deployment
from tests.support.world import GOOD_IMAGE, HOST_FILES, policy_text

VNFS = ("vnf-fw-c1", "vnf-fw-c2", "vnf-fw-c3")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    # Renew at every round (the enroll rule's validity is 1 h): renewals in flight.
    d = Deployment(tmp_path, policy_text(), vm_settings="renew_before_seconds = 3600")
    try:
        d.add_host("crash-host", HOST_FILES, *VNFS, image=GOOD_IMAGE, serve=True)
        for vnf in VNFS:
            enclave = d.backends["crash-host"].enclave(vnf)
            install = enclave.install

            def slow_install(*args: Any, _install: Any = install) -> Any:  # widen the window of renewals in flight
                time.sleep(0.05)
                return _install(*args)

            enclave.install = slow_install  # type: ignore[method-assign]
        yield d
    finally:
        d.close()


def enrollment_count(deployment: Deployment) -> int:
    return int(deployment.rows("SELECT COUNT(*) AS n FROM manager_enrollments")[0]["n"])


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sigkill_mid_round_loses_no_enrollment_and_issues_no_duplicate(deployment: Deployment) -> None:
    vm = deployment.start_vm("--reattest-interval", "0.3")
    vm.add_host("crash-host", deployment.servers["crash-host"].url)
    for vnf in VNFS:
        vm.add_vnf("crash-host", vnf)
        assert vm.enroll("crash-host", vnf)["allowed"]
    vm.close()
    for _ in range(3):
        # Kill right after a renewal committed: the round's other renewals are in flight.
        seen = enrollment_count(deployment)
        wait_for(lambda seen=seen: enrollment_count(deployment) > seen)
        before = {r["serial"] for r in deployment.rows("SELECT serial FROM manager_enrollments")}
        deployment.kill_vm()
        vm = deployment.start_vm("--reattest-interval", "0.3")
        after = {r["serial"] for r in deployment.rows("SELECT serial FROM manager_enrollments")}
        assert before <= after  # no enrollment lost
        vm.close()
    seen = enrollment_count(deployment)
    wait_for(lambda: enrollment_count(deployment) >= seen + len(VNFS))  # rounds resumed after the restart
    assert deployment.proc is not None
    deployment.proc.terminate()
    assert deployment.proc.wait(timeout=30) == 0
    deployment.proc = None

    certificates = {
        r["serial"]: r
        for r in deployment.rows("SELECT serial, sha256, subject FROM pki_certificates")
        if "OU=ftrust-admin" not in r["subject"]
    }
    enrollments = deployment.rows("SELECT * FROM manager_enrollments")
    by_serial: dict[str, list[sqlite3.Row]] = {}
    for e in enrollments:
        by_serial.setdefault(e["serial"], []).append(e)
    # Every VNF certificate belongs to exactly one enrollment record, and the other way round.
    assert set(certificates) == set(by_serial)
    assert all(len(v) == 1 for v in by_serial.values())
    assert all(by_serial[s][0]["certificate_sha256"] == c["sha256"] for s, c in certificates.items())
    # Exactly one active certificate per VNF; the others were superseded, none revoked.
    for vnf in VNFS:
        statuses = [e["status"] for e in enrollments if e["vnf"] == vnf]
        assert statuses.count("active") == 1 and set(statuses) <= {"active", "superseded"}, statuses
    assert len(enrollments) >= len(VNFS) * 3
    # What each enclave holds is a certificate the VM recorded.
    recorded = {e["certificate_sha256"] for e in enrollments}
    for vnf in VNFS:
        creds = deployment.backends["crash-host"].enclave(vnf).credentials
        assert creds is not None and creds.certificate_sha256 in recorded
