"""Shared fixtures of the attack regression tests: a real deployment on loopback (VM with its HTTPS
API and CRL/OCSP port, sim-backend agents over HTTPS) and raw-socket attack helpers.

Every test in this package performs an attack that once worked, for real over loopback, and
asserts the refusal (status, reason text, rows in the database).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from floodlight_trust.agent.backends.sim import SimBackend, SimEnclave
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app, tls_context
from floodlight_trust.floodlight import bridge
from floodlight_trust.protocol.http import HttpServer
from tests.floodlight.conftest import bridge_jar  # noqa: F401  (the fixture, for the controller tests)
from tests.manager.conftest import GOOD_IMAGE, HOST_FILES, World, ima_list, make_world
from tests.manager.test_agent_tls import self_signed


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A running VM whose CRL and OCSP are served at the URLs its certificates name."""
    yield from make_world(tmp_path_factory.mktemp("security"), crl_port=bridge._free_port("127.0.0.1"))


@dataclass
class TlsAgent:
    name: str
    server: HttpServer
    certificate_pem: str
    enclaves: dict[str, SimEnclave]


def start_tls_agent(world: World, vnfs: tuple[str, ...] = ()) -> TlsAgent:
    """A sim-backend agent serving HTTPS, registered with the VM (its certificate pinned)."""
    name = world.unique("sec-host")
    ima = world.tmp / f"{name}.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    backend = SimBackend(world.platforms[0], {})
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


__all__ = ["SlowClients", "TlsAgent", "World", "insecure_client_context", "start_tls_agent"]
