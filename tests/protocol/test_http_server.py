"""http/server.py: the server both services use. Long-lived streams next to ordinary requests,
client-certificate authentication, limits, and errors as one-line JSON documents."""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, Request, StreamingResponse, server_tls_context
from tests.support import rawhttp
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


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[tuple[HttpServer, Path, list[Request]]]:
    """A TLS server that asks for a client certificate (as the admin API does) and records requests."""
    cert, key, _ = self_signed(tmp_path, "127.0.0.1")
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(str(cert))  # the client below presents the same self-signed identity
    app = JsonApp(name="plain-test")
    seen: list[Request] = []

    @app.route("GET", "/things/{name}")
    def thing(request: Request, name: str) -> dict[str, object]:
        seen.append(request)
        return {"name": name, "query": request.query}

    @app.route("POST", "/things")
    def post(request: Request) -> tuple[int, dict[str, int]]:
        seen.append(request)
        return 201, {"length": len(request.body)}

    server = HttpServer(app, host="127.0.0.1", port=0, ssl_context=ctx, threads=2, name="plain-test").start()
    try:
        yield server, cert, seen
    finally:
        server.stop()


def test_head_answers_the_headers_without_the_body(plain: tuple[HttpServer, Path, list[Request]]) -> None:
    server, _, _ = plain
    sock = rawhttp.connect(server.port)
    try:
        sock.sendall(b"HEAD /things/a HTTP/1.1\r\nHost: x\r\n\r\nGET /things/b HTTP/1.1\r\nHost: x\r\n\r\n")
        stream = sock.makefile("rb")
        head, get = rawhttp.read_answer(stream, head=True), rawhttp.read_answer(stream)
    finally:
        sock.close()
    assert head is not None and get is not None
    assert head.status == 405 and int(head.headers["content-length"]) > 0  # no HEAD route, and no body sent
    assert get.status == 200 and get.body.startswith(b'{"name":"b"')


def test_expect_100_continue_is_answered_before_the_body_is_sent(plain: tuple[HttpServer, Path, list[Request]]) -> None:
    server, _, _ = plain
    sock = rawhttp.connect(server.port)
    try:
        sock.sendall(b"POST /things HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        stream = sock.makefile("rb")
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
        sock.sendall(b"abcd")
        answer = rawhttp.read_answer(stream)
        assert answer is not None and answer.status == 201 and answer.body == b'{"length":4}'
    finally:
        sock.close()


def test_requests_carry_the_path_query_remote_address_and_client_certificate(
    plain: tuple[HttpServer, Path, list[Request]], caplog: pytest.LogCaptureFixture
) -> None:
    server, cert, seen = plain
    key = cert.with_suffix(".key")
    before = _count("plain-test", "2xx")
    with caplog.at_level(logging.INFO, logger="floodlight_trust.access.plain-test"):
        r = requests.get(f"{server.url}/things/a.b?x=1&y=%20z", verify=str(cert), timeout=5)
    assert r.status_code == 200 and r.json() == {"name": "a.b", "query": {"x": "1", "y": " z"}}
    assert seen[-1].remote == "127.0.0.1" and seen[-1].peer_certificate_der is None
    assert _count("plain-test", "2xx") == before + 1
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "floodlight_trust.access.plain-test"]
    assert len(lines) == 1 and re.fullmatch(
        r'127\.0\.0\.1 "GET /things/a\.b\?x=1&y=%20z HTTP/1\.1" 200 \d+ \d+\.\d{6}s', lines[0]
    )
    # the path is percent-decoded before routing, as before (the query is decoded once, by Request.query)
    (answer,) = rawhttp.exchange(server.port, b"GET /things/a%2Db?q=%26 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 200 and answer.body == b'{"name":"a-b","query":{"q":"&"}}'
    # mutual TLS: the certificate the TLS layer verified reaches the handler as DER
    r = requests.get(f"{server.url}/things/c", verify=str(cert), cert=(str(cert), str(key)), timeout=5)
    assert r.status_code == 200
    assert seen[-1].peer_certificate_der == ssl.PEM_cert_to_DER_cert(cert.read_text())


def _count(listener: str, status: str) -> float:
    from floodlight_trust import metrics

    text = metrics.render()[0].decode()
    want = f'ftrust_http_requests_total{{listener="{listener}",status="{status}"}}'
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(want + " ")), 0.0)
