"""Issue 8: SIGKILL the VM (`ftrust vm serve`) in the middle of re-attestation rounds with renewals in
flight, restart it, and check that no enrollment is lost and no certificate is issued twice or
without its enrollment record."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.config import load
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.client import VmClient
from floodlight_trust.manager.service import issue_admin_certificate
from floodlight_trust.pki.ca import CertificateAuthority, load_ca_certificate
from floodlight_trust.pki.records import CertificateRecords
from floodlight_trust.sgxsim import SimulatedPlatform
from floodlight_trust.statestore import open_admin_ca
from floodlight_trust.storage.database import Database
from tests.support.cli import ftrust_command
from tests.support.world import HOST_FILES, PASSWORD, ima_list, policy_text

ROOT = Path(__file__).resolve().parents[2]
VNFS = ("vnf-fw-c1", "vnf-fw-c2", "vnf-fw-c3")


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        platform = SimulatedPlatform.create(tmp / "platform")
        (tmp / "site.policy").write_text(policy_text())
        (tmp / "host.ima").write_bytes(ima_list(HOST_FILES))
        self.config_path = tmp / "ftrust.toml"
        self.config_path.write_text(
            f"""
[state]
dir = "{tmp / "state"}"
[vm]
port = 0
crl_port = 0
policy = "site.policy"
trust_simulated_sgx = true
simulated_sgx_roots = "{tmp / "platform"}"
renew_before_seconds = 3600  # renew at every round (the enroll rule's validity is 1 h): renewals in flight
"""
        )
        config = load(self.config_path)
        self.db_path = config.state_dir / "ftrust.sqlite3"
        db = Database(self.db_path)
        CertificateAuthority.init(
            config.state_path("ca", "dir"), PASSWORD, subject="CN=crash test CA",
            crl_url=config.get("ca", "crl_url"), ocsp_url=config.get("ca", "ocsp_url"),
            at=clock.now(), records=CertificateRecords(db),
        )  # fmt: skip
        self.admin_cert, self.admin_key = issue_admin_certificate(
            open_admin_ca(config, PASSWORD, db, create_at=clock.now()), "root", tmp / "admin", at=clock.now(), password=PASSWORD
        )
        db.close()
        self.backend = SimBackend(platform, vm_ca=load_ca_certificate(config.state_path("ca", "dir")))
        for vnf in VNFS:
            enclave = self.backend.add_enclave(vnf, b"vnf-firewall enclave image: code v1.2 + config {rate: 100}\n")
            install = enclave.install

            def slow_install(*args: Any, _install: Any = install) -> Any:  # widen the window of renewals in flight
                time.sleep(0.05)
                return _install(*args)

            enclave.install = slow_install  # type: ignore[method-assign]
        agent = Agent("crash-host", self.backend, ImaSource(None, tmp / "host.ima"))
        self.agent = HttpServer(make_app(agent), host="127.0.0.1", port=0, threads=8, name="agent").start()
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start_vm(self) -> VmClient:
        self.proc = subprocess.Popen(
            ftrust_command("--config", str(self.config_path), "vm", "serve", "--reattest-interval", "0.3"),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            env={**os.environ, "FTRUST_CA_PASSWORD": PASSWORD.reveal()},
        )  # fmt: skip
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("Verification Manager API on https://localhost:"), first
        self.url = first.split()[4]
        return VmClient(
            self.url,
            server_certificate=self.tmp / "state" / "vm-tls" / "server.pem",
            client_certificate=(str(self.admin_cert), str(self.admin_key)),
            client_key_password=PASSWORD,
        )

    def kill_vm(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def rows(self, sql: str) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.db_path, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return list(con.execute(sql))
        finally:
            con.close()

    def enrollment_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM manager_enrollments")[0]["n"])


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    try:
        yield d
    finally:
        if d.proc is not None:
            d.kill_vm()
        d.agent.stop()


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sigkill_mid_round_loses_no_enrollment_and_issues_no_duplicate(deployment: Deployment) -> None:
    vm = deployment.start_vm()
    vm.add_host("crash-host", deployment.agent.url)
    for vnf in VNFS:
        vm.add_vnf("crash-host", vnf)
        assert vm.enroll("crash-host", vnf)["allowed"]
    vm.close()
    for _ in range(3):
        # Kill right after a renewal committed: the round's other renewals are in flight.
        seen = deployment.enrollment_count()
        wait_for(lambda seen=seen: deployment.enrollment_count() > seen)
        before = {r["serial"] for r in deployment.rows("SELECT serial FROM manager_enrollments")}
        deployment.kill_vm()
        vm = deployment.start_vm()
        after = {r["serial"] for r in deployment.rows("SELECT serial FROM manager_enrollments")}
        assert before <= after  # no enrollment lost
        vm.close()
    seen = deployment.enrollment_count()
    wait_for(lambda: deployment.enrollment_count() >= seen + len(VNFS))  # rounds resumed after the restart
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
        creds = deployment.backend.enclave(vnf).credentials
        assert creds is not None and creds.certificate_sha256 in recorded
