"""A TCP front for the demo's replicas: what a load balancer does in front of several VMs.

Each listening port forwards every connection, bytes as they are (TLS passes through: the
replicas share one server certificate), to the first replica that accepts it, trying them in turn
from the one after the last used; a replica that refuses the connection is skipped, so a killed
replica is simply passed over. Threads, loopback only: demo plumbing, not a product.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Sequence

log = logging.getLogger("floodlight_trust.demo.balancer")

CONNECT_TIMEOUT = 1.0


class TcpFront:
    """Listen on ``port`` (127.0.0.1) and forward each connection to one of ``backends`` (ports)."""

    def __init__(self, port: int, backends: Sequence[int], *, name: str):
        self.port = port
        self.backends = list(backends)
        self.name = name
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name=f"front-{name}", daemon=True)
        self.forwarded: dict[int, int] = {b: 0 for b in self.backends}  # connections per backend port

    def start(self) -> TcpFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        for i in range(len(self.backends)):
            port = self.backends[(start + i) % len(self.backends)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self.forwarded[port] += 1
            return upstream
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            log.warning("%s: no replica accepts connections", self.name)
            client.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):  # either side went away: pass the end on
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        for s in (client, upstream):
            s.close()
