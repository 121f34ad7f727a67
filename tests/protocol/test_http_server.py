"""http/server.py: the server both services use. Long-lived streams next to ordinary requests,
client-certificate authentication, limits, and errors as one-line JSON documents."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, Request, StreamingResponse, server_tls_context
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
