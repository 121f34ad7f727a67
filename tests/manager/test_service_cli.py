"""Admin authentication, revocation reaching the CRL, and the `ftrust vm` / `ftrust agent` commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
from cryptography import x509

from floodlight_trust.errors import VerificationError
from tests.support.cli import ftrust, ftrust_command
from tests.support.world import ADMIN_KEY_ENV, World, admin_args


def test_admin_endpoints_need_an_admin_client_certificate(world: World) -> None:
    with pytest.raises(VerificationError, match="client certificate"):
        world.anonymous.hosts()
    assert world.anonymous.request("GET", "/v1/health")["simulated_sgx"] is True


def test_a_vnf_certificate_from_the_same_ca_is_not_an_admin(world: World, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from floodlight_trust.manager.client import VmClient

    host = world.start_host()
    enclave = host.add_vnf("vnf-fw-not-admin")
    result = world.admin.enroll(host.name, "vnf-fw-not-admin")
    assert result["allowed"]
    cert, key = tmp_path / "vnf.pem", tmp_path / "vnf.key"
    cert.write_text("".join(result["certificate_chain"]))
    identity = enclave.tls_identity()  # an in-process test enclave: the test plays the VNF's TLS stack
    assert identity is not None
    key.write_bytes(
        identity[1].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    vnf_client = VmClient(
        world.service.api_url,
        server_certificate=world.service.tls_certificate,
        client_certificate=(str(cert), str(key)),
    )
    with pytest.raises(VerificationError, match="no admin role"):
        vnf_client.hosts()
    with pytest.raises(VerificationError, match="no admin role"):
        vnf_client.revoke(vnf="vnf-fw-not-admin", reason="a VNF revoking itself")
    assert [e["status"] for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-not-admin"] == ["active"]


def test_revoking_a_vnf_puts_its_serial_on_the_published_crl(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-revoked")
    result = world.admin.enroll(host.name, "vnf-fw-revoked")
    assert result["allowed"]
    generation = world.service.publisher.generation
    out = world.admin.revoke(vnf="vnf-fw-revoked", reason="decommissioned")
    assert out["revoked_serials"] == [result["serial"]]
    assert world.service.publisher.generation > generation  # republished at once
    crl = x509.load_der_x509_crl(requests.get(f"{world.service.publish.url}/crl.der", timeout=10).content)
    assert crl.get_revoked_certificate_by_serial_number(int(result["serial"], 16)) is not None
    records = [e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-revoked"]
    assert records[0]["status"] == "revoked" and records[0]["revoke_reason"] == "decommissioned"


def test_untrusted_host_on_reattestation_revokes_its_vnfs(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-reattest")
    assert world.admin.enroll(host.name, "vnf-fw-reattest")["allowed"]
    with host.ima_file.open("ab") as fh:
        from floodlight_trust.evidence.ima import format_ascii_line, make_entry

        fh.write(format_ascii_line(make_entry("/tmp/../usr/bin/dropper", b"\x01" * 32), "sha1").encode())
    verdict = world.service.vm.reattest_host(host.name)
    assert not verdict.trusted
    assert "/usr/bin/dropper" in " ".join(r.message for r in verdict.reasons)
    assert len(verdict.revoked_serials) == 1
    assert world.admin.vnfs()  # listing still works
    statuses = {v["vnf"]: v["status"] for v in world.admin.vnfs() if v["host"] == host.name}
    assert statuses["vnf-fw-reattest"] == "revoked"


def test_cli_lists_enrolls_and_explains_denials(world: World) -> None:
    host = world.start_host()
    changed = b"tampered image"
    host.add_vnf("vnf-fw-cli-bad", changed)
    r = ftrust("vm", "hosts", "list", "--json", *admin_args(world), env=ADMIN_KEY_ENV)
    assert r.returncode == 0, r.stderr
    assert host.name in [h["name"] for h in json.loads(r.stdout)]
    r = ftrust("vm", "enroll", host.name, "vnf-fw-cli-bad", *admin_args(world), env=ADMIN_KEY_ENV)
    assert r.returncode == 1, r.stderr
    assert "REFUSED" in r.stdout and "mrenclave" in r.stdout
    r = ftrust("vm", "audit", "--json", *admin_args(world), env=ADMIN_KEY_ENV)
    assert r.returncode == 0 and any(a["vnf"] == "vnf-fw-cli-bad" and not a["allowed"] for a in json.loads(r.stdout))


@pytest.mark.parametrize(
    "argv",
    [
        ["vm", "audit", "--since", "yesterday"],
        ["vm", "attest", "h1", "--admin-cert", "/nonexistent/admin.pem"],
        ["agent", "enroll", "vnf-x"],
    ],
)
def test_cli_user_errors_are_one_line_exit_2(argv: list[str], world: World) -> None:
    extra = admin_args(world) if argv[:2] == ["vm", "audit"] else []
    r = ftrust(*argv, *extra, env=ADMIN_KEY_ENV)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("ftrust: error: ")
    assert "Traceback" not in r.stderr


def test_vm_serve_and_agent_serve_run_until_terminated(tmp_path: Path, world: World) -> None:
    from tests.support.world import policy_text

    (tmp_path / "site.policy").write_text(policy_text())
    (tmp_path / "ima.log").write_bytes((world.tmp / f"{world.hosts[0].name}.ima").read_bytes())
    (tmp_path / "ftrust.toml").write_text(
        f"""
[state]
dir = "{tmp_path / "state"}"
[vm]
port = 0
crl_port = 0
policy = "site.policy"
trust_simulated_sgx = true
simulated_sgx_roots = "{tmp_path / "state" / "sim-platform"}"
[agent]
port = 0
name = "cli-host"
ima_log = "/nonexistent"
ima_log_fallback = "ima.log"
"""
    )
    env = {"FTRUST_CA_PASSWORD": "correct horse battery", "FTRUST_ADMIN_KEY_PASSWORD": "admin key password"}
    cfg = ["--config", str(tmp_path / "ftrust.toml")]
    init = ftrust(*cfg, "ca", "init", env={**ADMIN_KEY_ENV, **env})
    assert init.returncode == 0, init.stderr
    agent = subprocess.Popen(
        ftrust_command(*cfg, "agent", "serve"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = agent.stdout.readline() if agent.stdout else ""
        assert "agent cli-host (sim)" in line, line + (
            agent.stderr.read() if agent.poll() is not None and agent.stderr else ""
        )
        vm = subprocess.Popen(
            ftrust_command(*cfg, "vm", "serve"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            first = vm.stdout.readline() if vm.stdout else ""
            assert first.startswith("Verification Manager API on https://localhost:"), first + (
                vm.stderr.read() if vm.poll() is not None and vm.stderr else ""
            )
            url = first.split()[4]
            health = requests.get(
                url + "/v1/health", verify=str(tmp_path / "state" / "vm-tls" / "server.pem"), timeout=10
            )
            assert health.json()["simulated_sgx"] is True
        finally:
            vm.terminate()
            rc = vm.wait(timeout=30)
        assert rc == 0
        assert "SIMULATED SGX" in (vm.stderr.read() if vm.stderr else "")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
