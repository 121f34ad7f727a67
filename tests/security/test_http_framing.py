"""Attacks on the HTTP/1.1 framing of every listener (http/server.py, parsed by llhttp through
httptools): request smuggling, oversized heads, trickled requests and slow readers.

Request smuggling works when two parsers disagree on where a request ends (a proxy in front
reads Content-Length, the server Transfer-Encoding, or two Content-Length values): the attacker's
second request, hidden in the first one's body, then runs as if another client had sent it. The
server refuses every ambiguous framing with 400 before any handler runs, and closes the
connection, so nothing hidden in the body is ever read as a request. A client that trickles its
request, or that never reads a large answer, holds only a descriptor until its deadline, never a
thread another client needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, RawResponse, Request, Timeouts, server_tls_context
from tests.support import rawhttp
from tests.support.tls import self_signed

SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"


class Recorder:
    """The requests handlers ran, and the server's certificate (for a verifying client)."""

    def __init__(self, cert: Path) -> None:
        self.cert = str(cert)
        self.calls: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    def add(self, request: Request) -> None:
        with self.lock:
            self.calls.append((request.method, request.path, request.body))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[HttpServer, Recorder]]:
    cert, key, _ = self_signed(tmp_path, "framing")
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert), str(key))
    app = JsonApp(name="framing", max_body_bytes=4096)
    seen = Recorder(cert)

    @app.route("POST", "/echo")
    def echo(request: Request) -> dict[str, int]:
        seen.add(request)
        return {"length": len(request.body)}

    @app.route("GET", "/admin")
    def admin(request: Request) -> dict[str, str]:
        seen.add(request)
        return {"secret": "admin"}

    @app.route("GET", "/big")
    def big(request: Request) -> RawResponse:
        seen.add(request)
        return RawResponse(200, "application/octet-stream", b"x" * (16 * 1024 * 1024))

    srv = HttpServer(
        app, host="127.0.0.1", port=0, ssl_context=ctx, threads=1, name="framing",
        timeouts=Timeouts(handshake=2, header=1.5, body=2, write=2),
    ).start()  # fmt: skip
    try:
        yield srv, seen
    finally:
        srv.stop()


POST = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("head", "body", "reason"),
    [
        # CL.TE: a front end reading Content-Length forwards all of it; a server reading chunks stops at 0
        (b"Content-Length: 37\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, b"Content-Length"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUGGLED, b"Content-Length"),
        (b"Content-Length: 2\r\nContent-Length: 39\r\n", b"{}" + SMUGGLED, b"Content-Length"),
        (b"Content-Length: 2, 2\r\n", b"{}" + SMUGGLED, b"Content-Length"),
        (b"Content-Length: +2\r\n", b"{}" + SMUGGLED, b"Content-Length"),
        (b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n" + SMUGGLED, b"chunk size"),
        (b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffff1\r\n{}\r\n0\r\n\r\n" + SMUGGLED, b"hunk size"),
        (b"Transfer-Encoding: chunked\r\n", b"2\r{}\r\n0\r\n\r\n" + SMUGGLED, b"chunk size"),
        (b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n" + SMUGGLED, b"Transfer-Encoding"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n" + SMUGGLED, b"Transfer-Encoding"),
        (b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n" + SMUGGLED, b"header"),
        (b"X-Folded: a\r\n Transfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, b"malformed"),
    ],
    ids=["CL.TE", "TE.CL", "two-CL", "CL-list", "CL-sign", "chunk-size-hex", "chunk-size-overflow",
         "chunk-size-bare-CR", "TE-unknown", "TE-twice", "TE-space-before-colon", "obs-fold"],
)  # fmt: skip
def test_ambiguous_framing_is_refused_with_400_before_any_handler_runs(
    server: tuple[HttpServer, Recorder], head: bytes, body: bytes, reason: bytes
) -> None:
    srv, seen = server
    answers = rawhttp.exchange(srv.port, POST + head + b"\r\n" + body, answers=3)
    assert [a.status for a in answers] == [400], answers
    assert answers[0].headers["connection"] == "close"
    assert reason.lower() in answers[0].body.lower(), answers[0].body
    assert seen.calls == []  # neither the POST nor the request hidden in its body reached a handler


def test_an_upgrade_is_answered_in_http_1_1_and_nothing_after_it_or_in_its_body_runs(
    server: tuple[HttpServer, Recorder],
) -> None:
    srv, seen = server
    # llhttp skips an upgrade request's body: refused, so the body is never read as a request
    upgrade = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    answers = rawhttp.exchange(
        srv.port, POST + upgrade + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, answers=2
    )
    assert [a.status for a in answers] == [400] and b"upgrade is not supported" in answers[0].body
    assert seen.calls == []
    # an upgrade without a body (h2c, as the JDK's client offers it) is answered, then the connection closes
    h2c = b"GET /admin HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    answers = rawhttp.exchange(srv.port, h2c + POST + b"Content-Length: 2\r\n\r\n{}", answers=2)
    assert [(a.status, a.headers["connection"]) for a in answers] == [(200, "close")]
    assert [c[:2] for c in seen.calls] == [("GET", "/admin")]


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"request line longer than 8190"),
        (b"GET /admin HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"header field longer than 8190"),
        (
            b"GET /admin HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(65)) + b"\r\n",
            b"more than 64 header",
        ),
        (b"GET /admin HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", b"repeated host"),
        (b"GET /admin HTTP/1.1\nHost: x\n\n", b"malformed request"),
        (b"GET /admin HTTP/7.1\r\nHost: x\r\n\r\n", b"malformed request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"malformed request"),
    ],
    ids=["long-request-line", "long-header", "65-headers", "two-hosts", "bare-LF", "bad-version", "binary"],
)
def test_malformed_or_oversized_heads_are_refused_with_400(
    server: tuple[HttpServer, Recorder], request_bytes: bytes, reason: bytes
) -> None:
    srv, seen = server
    answers = rawhttp.exchange(srv.port, request_bytes, answers=2)
    assert [a.status for a in answers] == [400], answers
    assert reason.lower() in answers[0].body.lower(), answers[0].body
    assert seen.calls == []


def test_a_body_over_the_limit_is_refused_413_by_length_and_by_chunks(server: tuple[HttpServer, Recorder]) -> None:
    srv, seen = server
    by_length = rawhttp.exchange(srv.port, POST + b"Content-Length: 5000\r\n\r\n" + b"x" * 5000)
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    by_chunks = rawhttp.exchange(srv.port, POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert [a.status for a in by_length + by_chunks] == [413, 413]
    assert b"exceeds the limit of 4096" in by_length[0].body and b"exceeds the limit" in by_chunks[0].body
    assert seen.calls == []


def test_a_request_sent_byte_by_byte_slower_than_the_header_deadline_is_cut_at_it(
    server: tuple[HttpServer, Recorder],
) -> None:
    srv, seen = server
    request = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = rawhttp.connect(srv.port)
    t0, sent = time.monotonic(), 0
    try:
        for byte in request:  # a byte every 0.1 s: 3.3 s for the request, the deadline is 1.5 s
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.1)
    except OSError:  # the server closed the connection
        pass
    else:
        raise AssertionError("the whole request was accepted byte by byte past the header deadline")
    finally:
        sock.close()
    assert 1.4 < time.monotonic() - t0 < 3.0, time.monotonic() - t0
    assert sent < len(request) and seen.calls == []


def test_pipelined_requests_are_answered_in_order_and_refusal_ends_the_pipeline(
    server: tuple[HttpServer, Recorder],
) -> None:
    srv, seen = server
    pipeline = (
        POST + b"Content-Length: 2\r\n\r\n{}"
        + POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
        + POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
        + b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    )  # fmt: skip
    answers = rawhttp.exchange(srv.port, pipeline, answers=6)
    assert [a.status for a in answers] == [200, 200, 200, 400], answers
    assert [a.body for a in answers[:3]] == [b'{"length":2}', b'{"length":3}', b'{"secret":"admin"}']
    assert answers[3].headers["connection"] == "close"
    assert [c[:2] for c in seen.calls] == [("POST", "/echo"), ("POST", "/echo"), ("GET", "/admin")]


def test_a_slow_reader_of_a_large_answer_holds_no_handler_thread_and_is_cut_at_the_write_deadline(
    server: tuple[HttpServer, Recorder],
) -> None:
    srv, seen = server  # one handler thread only
    reader = rawhttp.connect(srv.port)
    try:
        reader.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB, and it never reads
        deadline = time.monotonic() + 5
        while not seen.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen.calls, "the large answer was never produced"
        t0 = time.monotonic()
        for _ in range(5):  # the one handler thread still answers everyone else at once
            answers = rawhttp.exchange(srv.port, POST + b"Content-Length: 2\r\n\r\n{}")
            assert [a.status for a in answers] == [200]
        assert time.monotonic() - t0 < 2.5
        time.sleep(2.5)  # past the write deadline (2 s): the server has given up on this reader
        received = 0
        reader.settimeout(5)
        try:
            while chunk := reader.recv(1 << 20):  # what the socket buffers held, then the end
                received += len(chunk)
        except OSError:  # reset: the server closed with its answer unsent
            pass
        assert received < 16 * 1024 * 1024, "the whole answer was written: the deadline was not tested"
    finally:
        reader.close()


def test_http_1_0_and_connection_close_end_the_connection_and_keep_alive_keeps_it(
    server: tuple[HttpServer, Recorder],
) -> None:
    srv, seen = server
    once = rawhttp.exchange(srv.port, b"GET /admin HTTP/1.0\r\n\r\n" + b"GET /admin HTTP/1.0\r\n\r\n", answers=2)
    assert [a.status for a in once] == [200] and once[0].headers["connection"] == "close"
    kept = rawhttp.exchange(
        srv.port, b"GET /admin HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + b"GET /admin HTTP/1.0\r\n\r\n", answers=3
    )
    assert [a.status for a in kept] == [200, 200] and kept[0].headers["connection"] == "keep-alive"
    closed = rawhttp.exchange(
        srv.port, b"GET /admin HTTP/1.1\r\nConnection: close\r\n\r\n" + b"GET /admin HTTP/1.1\r\n\r\n", answers=2
    )
    assert [a.status for a in closed] == [200] and closed[0].headers["connection"] == "close"
    session = requests.Session()  # and a library client reuses its connection as usual
    for _ in range(3):
        assert session.get(f"{srv.url}/admin", verify=seen.cert, timeout=5).json() == {"secret": "admin"}
    session.close()
