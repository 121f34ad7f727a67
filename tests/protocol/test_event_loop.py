"""http/server.py runs its listeners on uvloop's event loop (a declared dependency), with what the
server relies on from the loop: the TLS handshake timeout and the verified client certificate; and on
asyncio's own loop where uvloop is missing. The DoS properties on this loop are tests/security/test_dos.py."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import time
from pathlib import Path

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, Request, Timeouts, new_event_loop, server_tls_context
from tests.support.tls import self_signed


def app() -> JsonApp:
    a = JsonApp(name="loop-test")

    @a.route("GET", "/who")
    def who(request: Request) -> dict[str, object]:
        return {"certificate": request.peer_certificate_der.hex() if request.peer_certificate_der else None}

    return a


def tls_server(tmp_path: Path, *, handshake: float = 5.0) -> tuple[HttpServer, Path, Path, Path]:
    cert, key, _ = self_signed(tmp_path, "server")
    client_cert, client_key, _ = self_signed(tmp_path, "client")
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(str(client_cert))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    server = HttpServer(
        app(), host="127.0.0.1", port=0, ssl_context=ctx, threads=2, timeouts=Timeouts(handshake=handshake)
    )
    return server.start(), cert, client_cert, client_key


def test_the_listeners_run_on_uvloop_and_see_the_verified_client_certificate(tmp_path: Path) -> None:
    import uvloop  # a dependency of the package (pyproject): installed wherever it runs

    server, cert, client_cert, client_key = tls_server(tmp_path)
    try:
        assert isinstance(server._loop, uvloop.Loop)
        anonymous = requests.get(server.url + "/who", verify=str(cert), timeout=10)
        assert anonymous.status_code == 200 and anonymous.json() == {"certificate": None}
        r = requests.get(server.url + "/who", verify=str(cert), cert=(str(client_cert), str(client_key)), timeout=10)
        der = ssl.PEM_cert_to_DER_cert(client_cert.read_text())
        assert r.status_code == 200 and r.json() == {"certificate": der.hex()}
    finally:
        server.stop()


def test_a_handshake_never_finished_is_dropped_at_the_handshake_timeout(tmp_path: Path) -> None:
    server, *_ = tls_server(tmp_path, handshake=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
            start = time.monotonic()
            assert idle.recv(1) == b""  # closed by the server, no byte sent
            assert 0.3 < time.monotonic() - start < 5
    finally:
        server.stop()


def test_without_uvloop_the_server_runs_on_asyncios_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    loop = new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
    server, cert, _, _ = tls_server(tmp_path)
    try:
        assert isinstance(server._loop, asyncio.BaseEventLoop)
        r = requests.get(server.url + "/who", verify=str(cert), timeout=10)
        assert r.status_code == 200 and r.json() == {"certificate": None}
    finally:
        server.stop()
