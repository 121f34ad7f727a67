"""http/server.py: the server both services use. Long-lived streams next to ordinary requests,
client-certificate authentication, limits, and errors as one-line JSON documents."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, Request, StreamingResponse, server_tls_context
from tests.support.attacks import insecure_client_context
from tests.support.tls import self_signed


class Broadcast:
    """Events for every open stream (each stream has its own queue)."""

    def __init__(self) -> None:
        self.queues: list[queue.Queue[bytes | None]] = []
        self.lock = threading.Lock()

    def subscribe(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue()
        with self.lock:
            self.queues.append(q)
        return q

    def put(self, item: bytes | None) -> None:
        with self.lock:
            for q in self.queues:
                q.put(item)


@pytest.fixture
def streaming(tmp_path: Path) -> Iterator[tuple[HttpServer, Broadcast, threading.Event, Path]]:
    events = Broadcast()
    closed = threading.Event()
    app = JsonApp(name="stream-test")

    def chunks() -> Iterator[bytes]:
        mine = events.subscribe()
        try:
            while True:
                try:
                    item = mine.get(timeout=0.2)
                except queue.Empty:
                    yield b": heartbeat\n\n"  # lets the server notice a closed client or a stop
                    continue
                if item is None:
                    return
                yield item
        finally:
            closed.set()

    @app.route("GET", "/stream")
    def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(200, "text/event-stream", chunks())

    @app.route("GET", "/ping")
    def ping(request: Request) -> dict[str, str]:
        return {"pong": (request.client_certificate_pem is None and "anonymous") or "with certificate"}

    cert, key, _ = self_signed(tmp_path, "stream")
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert), str(key))
    server = HttpServer(app, host="127.0.0.1", port=0, ssl_context=ctx, threads=2, max_streams=4).start()
    try:
        yield server, events, closed, cert
    finally:
        events.put(None)
        server.stop()


def test_a_long_lived_stream_does_not_block_other_clients(
    streaming: tuple[HttpServer, Broadcast, threading.Event, Path],
) -> None:
    server, events, closed, cert = streaming
    streams = [requests.get(f"{server.url}/stream", stream=True, verify=str(cert), timeout=10) for _ in range(3)]
    for s in streams:
        assert s.status_code == 200 and s.headers["Content-Type"].startswith("text/event-stream")
    # More open streams than handler threads (2), and requests are still answered at once.
    t0 = time.monotonic()
    for _ in range(5):
        assert requests.get(f"{server.url}/ping", verify=str(cert), timeout=5).json() == {"pong": "anonymous"}
    assert time.monotonic() - t0 < 2
    events.put(b"data: revoked 1234\n\n")
    for s in streams:  # every stream gets the event (bounded: heartbeats keep the reads short)
        got, deadline = b"", time.monotonic() + 10
        for chunk in s.iter_content(chunk_size=None):
            got += chunk
            if b"revoked 1234" in got or time.monotonic() > deadline:
                break
        assert b"data: revoked 1234" in got
    for s in streams:
        s.close()
    assert closed.wait(10), "the stream's iterator was not closed when its client went away"


def test_streams_past_the_limit_are_refused_with_503(
    streaming: tuple[HttpServer, Broadcast, threading.Event, Path],
) -> None:
    server, _, _, cert = streaming
    held = [requests.get(f"{server.url}/stream", stream=True, verify=str(cert), timeout=10) for _ in range(4)]
    try:
        assert all(s.status_code == 200 for s in held)
        extra = requests.get(f"{server.url}/stream", verify=str(cert), timeout=10)
        assert extra.status_code == 503 and "too many open streams" in extra.json()["error"]["message"]
    finally:
        for s in held:
            s.close()


def test_errors_are_one_line_json_and_bodies_are_limited(
    streaming: tuple[HttpServer, Broadcast, threading.Event, Path],
) -> None:
    server, _, _, cert = streaming
    r = requests.get(f"{server.url}/nowhere/" + "x" * 5000, verify=str(cert), timeout=5)
    assert r.status_code == 404 and len(r.json()["error"]["message"]) < 450
    r = requests.post(f"{server.url}/ping", verify=str(cert), timeout=5)
    assert r.status_code == 405
    big = requests.post(
        f"{server.url}/ping", data=b"x" * (17 * 1024 * 1024), verify=str(cert), timeout=30,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert big.status_code == 413


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[HttpServer]:
    """A server that takes bodies of at most 1,000 bytes and echoes the length of what it got."""
    cert, key, _ = self_signed(tmp_path, "127.0.0.1")
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert), str(key))
    app = JsonApp(name="limit-test", max_body_bytes=1000)

    @app.route("POST", "/echo")
    def echo(request: Request) -> dict[str, int]:
        return {"length": len(request.body)}

    server = HttpServer(app, host="127.0.0.1", port=0, ssl_context=ctx, threads=2, name="limit-test").start()
    try:
        yield server
    finally:
        server.stop()


def _send_whole(server: HttpServer, request: bytes) -> bytes:
    """Send ``request`` in one write (headers and body arrive together) and read the answer."""
    sock = insecure_client_context().wrap_socket(
        socket.create_connection(("127.0.0.1", server.port)), server_hostname="127.0.0.1"
    )
    try:
        sock.settimeout(5)
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


def _chunked(body: bytes) -> bytes:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "text"),
    [
        # a body that came whole with its headers takes the server's short path; the limits hold there
        (_chunked(b"x" * 1001), b"413", b"exceeds the limit of 1000 bytes"),
        (_chunked(b"x" * 1000), b"200", b'"length":1000'),
        (
            b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"a": "bcd"}',
            b"200",
            b'"length":12',
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1001\r\n\r\n"
            + b"x" * 1001,
            b"413",
            b"exceeds the limit of 1000",
        ),
    ],
    ids=["chunked-over-limit", "chunked-at-limit", "content-length", "content-length-over-limit"],
)
def test_a_body_that_arrives_with_its_headers_is_limited_and_read_whole(
    small_limit: HttpServer, request_bytes: bytes, status: bytes, text: bytes
) -> None:
    answer = _send_whole(small_limit, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:120]
    assert text in answer, answer
