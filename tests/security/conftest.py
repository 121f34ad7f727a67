"""Shared fixtures of the attack regression tests: a running VM (HTTPS API + CRL/OCSP really served
on loopback) with sim-backend agents, and the ways an attacker's effect is measured: HTTP status and
reason, CLI exit code and message, rows in the VM's database, CRL and OCSP answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.floodlight.conftest import bridge_jar  # noqa: F401  (the JDK fixture, for the controller cases)
from tests.manager.conftest import ADMIN_KEY_PASSWORD, World, make_world

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A VM whose certificates name the CRL and OCSP URLs it really serves."""
    yield from make_world(tmp_path_factory.mktemp("attack"), crl_port=free_port())


def count(world: World, sql: str, *params: Any) -> int:
    """``SELECT COUNT(*) ...`` on the VM's own database (what an attack left behind)."""
    return int(world.service.vm.db.query(sql, params)[0][0])


def table_sizes(world: World) -> dict[str, int]:
    """Rows per table of the VM's state store (an unauthenticated attacker must not change them)."""
    tables = [r[0] for r in world.service.vm.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: count(world, f"SELECT COUNT(*) FROM {t}") for t in tables if t != "sqlite_sequence"}


def post(world: World, path: str, body: Any) -> requests.Response:
    """An unauthenticated POST to the VM's API over real HTTPS (what any network peer can send)."""
    return requests.post(world.service.api_url + path, json=body, verify=str(world.service.tls_certificate), timeout=30)


def unauthenticated_rejects(endpoint: str, reason: str) -> float:
    """The metric counting refusals that recorded nothing, for one endpoint and reason code."""
    from floodlight_trust import metrics

    direct = getattr(metrics, "unauthenticated_rejects", None)
    if direct is not None:
        return float(direct(endpoint, reason))
    text = metrics.render()[0].decode()  # the Prometheus registry
    want = f'ftrust_unauthenticated_rejects_total{{endpoint="{endpoint}",reason="{reason}"}}'
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def admin_args(world: World) -> list[str]:
    cert = world.tmp / "admin" / "alice.pem"
    return [
        "--vm-url",
        world.service.api_url,
        "--admin-cert",
        str(cert),
        "--admin-key",
        str(cert.with_suffix(".key")),
        "--vm-certificate",
        str(world.service.tls_certificate),
    ]


def ftrust(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `ftrust` CLI in a child process (the admin key password in its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "floodlight_trust", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FTRUST_ADMIN_KEY_PASSWORD": ADMIN_KEY_PASSWORD.reveal(), **(env or {})},
        cwd=REPO,
    )


def vm_cli(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ftrust vm ...` against the running VM, as the admin alice."""
    return ftrust("vm", *argv, *admin_args(world))


def ocsp_status(world: World, certificate_pem: str) -> ocsp.OCSPCertStatus:
    """What the VM's OCSP responder (at the URL in the certificate) says about a certificate now."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    issuer = world.ca.certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    url = world.service.publish.url + "/ocsp"
    r = requests.post(
        url,
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    answer = ocsp.load_der_ocsp_response(r.content)
    return answer.certificate_status


def crl_serials(world: World) -> set[int]:
    """The serials on the CRL the VM publishes now."""
    crl = x509.load_der_x509_crl(requests.get(world.service.publish.url + "/crl.der", timeout=10).content)
    return {r.serial_number for r in crl}


def write_config(world: World) -> Path:
    """A config file for `ftrust` commands on the running VM's own state store (as on the VM host)."""
    path = world.tmp / "vm.toml"
    if not path.exists():
        vm = world.service.vm
        path.write_text(
            f"""[state]
dir = "{world.tmp / "state"}"
[ca]
crl_url = "{vm.ca.crl_url}"
ocsp_url = "{vm.ca.ocsp_url}"
"""
        )
    return path


def ca_cli(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ftrust ca ...` on the VM host's state (the CA password from the environment)."""
    from tests.manager.conftest import PASSWORD

    return ftrust("--config", str(write_config(world)), "ca", *argv, env={"FTRUST_CA_PASSWORD": PASSWORD.reveal()})
