"""Shared fixtures of the attack regression tests: a running VM (HTTPS API + CRL/OCSP really served
on loopback) with sim-backend agents, and the ways an attacker's effect is measured: HTTP status and
reason, CLI exit code and message, rows in the VM's database, CRL and OCSP answers."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app, tls_context
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.http.server import HttpServer
from floodlight_trust.sgxsim import SimulatedPlatform
from tests.floodlight.conftest import bridge_jar  # noqa: F401  (the fixture, for the controller tests)
from tests.manager.conftest import ADMIN_KEY_PASSWORD, GOOD_IMAGE, HOST_FILES, World, ima_list, make_world
from tests.manager.test_agent_tls import self_signed

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A VM whose certificates name the CRL and OCSP URLs it really serves."""
    yield from make_world(tmp_path_factory.mktemp("attack"), crl_port=free_port())


@pytest.fixture(scope="module")
def deployment(world: World) -> World:
    """The same running VM (the robustness tests' name for it)."""
    return world


def count(world: World, sql: str, *params: Any) -> int:
    """``SELECT COUNT(*) ...`` on the VM's own database (what an attack left behind)."""
    return int(world.service.vm.storage.query(sql, params)[0][0])


def table_sizes(world: World) -> dict[str, int]:
    """Rows per table of the VM's state store (an unauthenticated attacker must not change them)."""
    tables = [r[0] for r in world.service.vm.storage.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
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


@dataclass
class TlsAgent:
    name: str
    server: HttpServer
    certificate_pem: str
    enclaves: dict[str, EnclaveRuntime]


def start_tls_agent(world: World, vnfs: tuple[str, ...] = ()) -> TlsAgent:
    """A sim-backend agent serving HTTPS, registered with the VM (its certificate pinned)."""
    name = world.unique("sec-host")
    ima = world.tmp / f"{name}.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    machine = SimulatedPlatform.create(world.tmp / f"{name}-platform", authority=world.platforms[0])  # its own PCK
    backend = SimBackend(machine, vm_ca=world.ca.certificate)
    enclaves = {vnf: backend.add_enclave(vnf, GOOD_IMAGE) for vnf in vnfs}
    cert, key, pem = self_signed(world.tmp, name)
    server = HttpServer(
        make_app(Agent(name, backend, ImaSource(None, ima))),
        host="127.0.0.1",
        port=0,
        ssl_context=tls_context(cert, key),
        name="agent",
    ).start()
    world.admin.add_host(name, server.url, agent_certificate=pem)
    for vnf in vnfs:
        world.admin.add_vnf(name, vnf)  # registered as an admin would (host, name)
    return TlsAgent(name, server, pem, enclaves)


def insecure_client_context() -> ssl.SSLContext:
    """An attacker's TLS client: completes handshakes with anything (it only wants to hold a slot)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class SlowClients:
    """Connections an unauthenticated attacker holds open on one port: ``idle`` ones that never send
    a byte (not even a TLS ClientHello) and ``slow`` ones that finished the handshake (TLS ports)
    and then trickle a request's headers one byte at a time, never ending them."""

    port: int
    tls: bool
    idle: list[socket.socket] = field(default_factory=list)
    slow: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    bytes_sent: int = 0

    def open(self, idle: int, slow: int) -> SlowClients:
        for _ in range(idle):
            self.idle.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        ctx = insecure_client_context()
        for _ in range(slow):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if self.tls:
                sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            sock.sendall(b"POST /v1/attest/host HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.slow.append(sock)
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        deadline = time.monotonic() + 120  # bounded, whatever happens to the test
        while not self._stop.wait(0.25) and time.monotonic() < deadline:
            for sock in list(self.slow):
                try:
                    sock.send(b"a")
                    self.bytes_sent += 1
                except OSError:  # the server closed it (header timeout)
                    self.slow.remove(sock)

    def still_open(self) -> int:
        """How many of the attacker's connections the server has not closed yet."""
        alive = 0
        for sock in self.idle + self.slow:
            try:
                sock.setblocking(False)
                data = sock.recv(1, socket.MSG_PEEK) if not isinstance(sock, ssl.SSLSocket) else sock.recv(1)
                alive += 0 if data == b"" else 1
            except (BlockingIOError, ssl.SSLWantReadError):
                alive += 1
            except OSError:
                pass
            finally:
                try:
                    sock.setblocking(True)
                    sock.settimeout(5)
                except OSError:
                    pass
        return alive

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in self.idle + self.slow:
            try:
                sock.close()
            except OSError:
                pass
