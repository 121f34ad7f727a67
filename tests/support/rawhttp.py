"""A client that speaks HTTP/1.1 byte by byte over TLS: what a hostile or unusual peer sends
(smuggling attempts, pipelining, trickled bytes), which a library client would refuse to send."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import BinaryIO

from tests.support.attacks import insecure_client_context


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def connect(port: int, *, tls: bool = True, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        sock = insecure_client_context().wrap_socket(sock, server_hostname="127.0.0.1")
    sock.settimeout(timeout)
    return sock


def read_answer(stream: BinaryIO, *, head: bool = False) -> Answer | None:
    """One response from ``stream`` (sock.makefile("rb")), its body by Content-Length or chunks
    (none if it answers a HEAD request); None when the server closed before a status line."""
    line = stream.readline(65536)
    if not line:
        return None
    version, status, _ = line.decode("latin-1").split(" ", 2)
    assert version == "HTTP/1.1", line
    headers: dict[str, str] = {}
    while True:
        field = stream.readline(65536)
        if field in (b"\r\n", b""):
            break
        name, _, value = field.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head:
        body = b""
    elif "content-length" in headers:
        body = stream.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while (size := int(stream.readline(100).split(b";")[0], 16)) > 0:
            parts.append(stream.read(size))
            stream.readline(10)
        stream.readline(10)
        body = b"".join(parts)
    else:
        body = stream.read()
    return Answer(int(status), headers, body)


def exchange(port: int, data: bytes, *, tls: bool = True, answers: int = 1) -> list[Answer]:
    """Send ``data`` in one write and read up to ``answers`` responses (fewer if the server closes)."""
    sock = connect(port, tls=tls)
    try:
        sock.sendall(data)
        stream = sock.makefile("rb")
        got = []
        for _ in range(answers):
            try:
                answer = read_answer(stream)
            except (ConnectionError, ssl.SSLError):
                break
            if answer is None:
                break
            got.append(answer)
        return got
    finally:
        sock.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds, reading and
    dropping anything it sends meanwhile."""
    deadline = time.monotonic() + within
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True
