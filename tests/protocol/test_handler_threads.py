"""The server's request handler threads (http/server.py _Handlers): at most ``threads`` of them,
requests beyond that wait for a free one, a handler's exception is a 500 without internals, and a
stopped server's pool refuses new work and hands back what was queued (the server answers those
503 "server is stopping")."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from floodlight_trust.http.server import HttpServer, JsonApp, Request, _Handlers


def test_at_most_threads_run_at_once_and_every_request_is_answered() -> None:
    app = JsonApp()
    lock = threading.Lock()
    running, peak, names = [0], [0], set()
    release = threading.Event()

    @app.route("GET", "/slow")
    def slow(request: Request) -> dict[str, int]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
        release.wait(5)
        with lock:
            running[0] -= 1
        return {"ok": 1}

    @app.route("GET", "/bug")
    def bug(request: Request) -> None:
        raise RuntimeError("secret internals")

    server = HttpServer(app, host="127.0.0.1", port=0, threads=3, access_log=False).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(requests.get, f"{server.url}/slow", timeout=10) for _ in range(8)]
            threading.Timer(0.5, release.set).start()
            assert [a.result().status_code for a in answers] == [200] * 8
        assert peak[0] <= 3 and len(names) <= 3
        r = requests.get(f"{server.url}/bug", timeout=5)
        assert r.status_code == 500 and "secret" not in r.text and r.json()["error"]["type"] == "InternalError"
    finally:
        server.stop()


def test_a_shut_down_pool_refuses_work_and_returns_what_was_queued() -> None:
    pool = _Handlers(1, "t")
    gate, started, ran = threading.Event(), threading.Event(), []

    def hold(arg: str) -> None:
        started.set()
        gate.wait(5)
        ran.append(arg)

    pool.run(hold, "first")
    assert started.wait(5)  # the one thread runs the first request
    pool.run(ran.append, "queued")
    assert pool.shutdown() == ["queued"]  # never started: handed back (the server answers 503)
    gate.set()
    pool.join(5)
    assert ran == ["first"]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.run(ran.append, "late")


def test_a_request_still_queued_when_the_server_stops_is_answered_503() -> None:
    app = JsonApp()
    gate, started = threading.Event(), threading.Event()

    @app.route("GET", "/hold")
    def hold(request: Request) -> dict[str, int]:
        started.set()
        gate.wait(10)
        return {"held": 1}

    server = HttpServer(app, host="127.0.0.1", port=0, threads=1, access_log=False).start()
    stopper = threading.Thread(target=server.stop)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(requests.get, f"{server.url}/hold", timeout=10)
            assert started.wait(5)  # the one handler thread is busy
            queued = pool.submit(requests.get, f"{server.url}/hold", timeout=10)
            deadline = time.monotonic() + 5
            while server._pool._queue.qsize() == 0 and time.monotonic() < deadline:  # read, waiting for the thread
                time.sleep(0.01)
            stopper.start()
            answer = queued.result()
            assert answer.status_code == 503 and answer.json()["error"]["message"] == "server is stopping"
            gate.set()
            assert first.result().json() == {"held": 1}  # the running request still completes
    finally:
        gate.set()
        if stopper.ident is None:
            server.stop()
        else:
            stopper.join(15)
