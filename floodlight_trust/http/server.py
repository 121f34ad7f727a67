"""The HTTP plumbing the VM and the agent share: a small JSON application and its server.

A client that never finishes its TLS handshake or its request headers must not hold anything
another client needs. One selector thread (epoll) does every TLS handshake and reads every request
without blocking, concurrently for every connection, each bounded by its own deadline; only a
*complete* request (headers and body read) reaches a handler thread, which runs it, writes the
answer and gives the connection back to epoll. cheroot, before, did the handshake in its accept
thread (one idle TCP connection stalled every new client for 30 s) and read headers in its worker
threads (4 slow clients stopped the CRL/OCSP port); aiohttp's asyncio server, after it, had the
right shape but spent ~0.7 ms of CPU per request in asyncio's pure-Python TLS transport and its
per-request objects. TLS here is ssl.SSLSocket (OpenSSL, in C) and HTTP/1.1 is parsed by llhttp
(httptools), which refuses ambiguous framing (request smuggling: Content-Length with
Transfer-Encoding, repeated or malformed Content-Length, bad chunk sizes). The deadlines
(:class:`Timeouts`, documented in docs/operator-guide.md and configs/ftrust.toml):

- ``handshake``: a TLS handshake not complete by then is dropped.
- ``header``: from the moment a connection is ready (its handshake done), or a response ends, until
  the next request's headers are complete; sending a byte now and then does not extend it
  (slowloris). It is also the idle time of a kept-alive connection.
- ``body``: the request body must arrive within this (else 408).
- ``write``: an answer the client does not take at once is written by the selector thread (the
  handler thread is free) and must be taken within this, else the connection is closed.

Requests: HTTP/1.1 and 1.0, keep-alive and ``Connection: close``, pipelined requests answered in
order, chunked or Content-Length bodies up to ``max_body_bytes`` (413 past it, before a handler
runs), ``Expect: 100-continue``; a HEAD request is routed as its method (no route has it today: 405)
and its answer is sent without the body. A request line or
header field of more than 8190 bytes, more than 64 header fields, or any malformed request is a 400
and the connection closes; the error is logged as one line. An upgrade (h2c, websocket) is not
done: the request is answered in HTTP/1.1 and the connection closed.

Handlers receive a :class:`Request` and return a JSON-able value (200), a ``(status, value)`` pair,
a :class:`RawResponse`, or a :class:`StreamingResponse` (a long-lived response whose chunks come
from an iterator run in a thread of its own, so a stream never occupies a request handler thread).
Errors of the project's hierarchy become JSON error documents (schema ``error``) with a fitting
status: bad input 400, verification failed or policy denied 403 (with every reason), remote service
failure 502. A client's error is logged as one line, never as a traceback; a handler bug is a 500
with its traceback in the server log and no internals in the answer.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import email.utils
import enum
import http
import json
import logging
import os
import queue
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools

from floodlight_trust import clock, metrics
from floodlight_trust.errors import ConfigError, FtrustError, InputError, ServiceError, VerificationError
from floodlight_trust.http.peer_json import parse_json

log = logging.getLogger("floodlight_trust.http")

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# Long error messages are cut here (every reason of a refusal fits; a reply never echoes a large
# part of what the client sent: schema errors quote at most a short prefix, protocol.MAX_ECHO).
MAX_ERROR_MESSAGE = 4000


class HttpError(Exception):
    """An error with an HTTP status, for conditions that are not one of the project's errors."""

    def __init__(self, status: int, message: str, *, kind: str = "HttpError", hint: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.hint = hint


@dataclass(frozen=True)
class RawResponse:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StreamingResponse:
    """A response sent as ``chunks`` yields them, on a long-lived connection.

    The iterator runs in a thread of its own (at most ``HttpServer.max_streams`` at once; past that
    the request is refused with 503). It should yield now and then (a heartbeat) so a closed client
    or a stopping server is noticed; ``close()`` is called on it when the client goes away."""

    status: int
    content_type: str
    chunks: Iterator[bytes]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    query_string: str = ""
    params: dict[str, str] = field(default_factory=dict)
    peer_certificate_der: bytes | None = None  # verified by the TLS layer against the server's CA
    remote: str | None = None
    route: str = ""  # the matched route pattern (a bounded label for metrics), set by JsonApp

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        if self.content_type != "application/json":
            raise HttpError(415, f"expected Content-Type application/json, got {self.content_type[:64] or 'none'!r}")
        return parse_json(self.body)

    @property
    def query(self) -> dict[str, str]:
        q = parse_qs(self.query_string, keep_blank_values=True)
        return {k: v[-1] for k, v in q.items()}

    @property
    def client_certificate_pem(self) -> str | None:
        """The TLS client certificate (already verified against the server's CA by the TLS layer)."""
        if not self.peer_certificate_der:
            return None
        return ssl.DER_cert_to_PEM_cert(self.peer_certificate_der)


Handler = Callable[..., Any]
Result = RawResponse | StreamingResponse


class JsonApp:
    """Routes ``(method, path pattern)`` to handlers; patterns use ``{name}`` (and ``{name*}``)."""

    def __init__(self, *, max_body_bytes: int = 16 * 1024 * 1024, name: str = "ftrust"):
        self.max_body_bytes = max_body_bytes
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._patterns: list[tuple[str, str]] = []
        # Routes without parameters by (method, path): found with one lookup instead of trying every
        # pattern (the agent-facing POSTs are such routes). Only for a path no parameterized route
        # also matches, so the first registered route that matches still wins.
        self._exact: dict[tuple[str, str], Handler] = {}
        self._exact_paths: set[str] = set()

    def route_patterns(self) -> list[tuple[str, str]]:
        """(method, pattern) of every route, as registered: what docs/openapi.yaml must describe."""
        return list(self._patterns)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        text = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)  # {name*}: the rest of the path
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9._-]+)", text) + "$")

        def register(fn: Handler) -> Handler:
            self._routes.append((method, regex, fn, pattern))
            self._patterns.append((method, pattern))
            self._index()
            return fn

        return register

    def _index(self) -> None:
        exact: dict[tuple[str, str], Handler] = {}
        for method, _regex, fn, pattern in self._routes:
            if "{" in pattern:
                continue
            shadowed = any(r.match(pattern) for m, r, _, p in self._routes if "{" in p and m == method)
            if not shadowed:
                exact.setdefault((method, pattern), fn)
        self._exact = exact
        self._exact_paths = {path for _, path in exact}

    def add_operational_routes(self, health: Callable[[], dict[str, Any]] | None = None) -> None:
        """``GET /v1/health`` (unless the app has its own) and ``GET /metrics`` (Prometheus)."""
        if health is not None:
            self.route("GET", "/v1/health")(lambda request: health())

        @self.route("GET", "/metrics")
        def prometheus(request: Request) -> RawResponse:
            body, ctype = metrics.render()
            return RawResponse(200, ctype, body)

    def handle(self, request: Request) -> Result:
        """The response to one complete request; never raises."""
        try:
            handler, params, pattern = self._match(request.method, request.path)
            request.params, request.route = params, pattern
            result = handler(request, **params)
            if isinstance(result, RawResponse | StreamingResponse):
                return result
            status, value = result if isinstance(result, tuple) else (200, result)
            return _json_response(status, value)
        except HttpError as e:
            return _json_response(e.status, _error_doc(e.kind, e.message, e.hint))
        except FtrustError as e:
            status = 403 if isinstance(e, VerificationError) else 502 if isinstance(e, ServiceError) else 400
            status = int(getattr(e, "http_status", status))  # NotFoundError 404, ConflictError 409
            if not isinstance(e, InputError | VerificationError | ServiceError):
                status = 500
            doc = _error_doc(type(e).__name__, str(e), e.hint)
            reasons = getattr(e, "reasons", None)
            if reasons:
                doc["error"]["reasons"] = reasons
            if status >= 500:
                log.error("%s: %s %s: %s", self.name, request.method, request.path[:200], _cut(str(e)))
            else:
                log.info("%s: refused %s %s: %s", self.name, request.method, request.path[:200], _cut(str(e)))
            return _json_response(status, doc)
        except Exception:  # a bug in a handler: log it, answer 500 without internals
            log.exception("%s: internal error on %s %s", self.name, request.method, request.path[:200])
            return _json_response(500, _error_doc("InternalError", "internal error (see the server log)"))

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str], str]:
        fn = self._exact.get((method, path))
        if fn is not None:
            return fn, {}, path
        allowed = False
        for m, regex, fn, pattern in self._routes:
            found = regex.match(path)
            if found:
                if m == method:
                    return fn, found.groupdict(), pattern
                allowed = True
        if allowed:
            raise HttpError(405, f"method {method[:16]} not allowed on {path[:200]}")
        raise HttpError(404, f"no such resource: {path[:200]}")


def _cut(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _json_response(status: int, value: Any) -> RawResponse:
    return RawResponse(status, "application/json", json.dumps(value, separators=(",", ":")).encode())


def _error_doc(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": _cut(message), "hint": hint}}


# -- TLS -----------------------------------------------------------------------------------------

# TLS 1.2: forward secrecy and authenticated encryption only (no CBC, no RSA key exchange).
# TLS 1.3 suites are all AEAD with (EC)DHE and are not affected by set_ciphers.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_tls_context() -> ssl.SSLContext:
    """A server context: TLS 1.2+, TLS 1.2 limited to ECDHE with AEAD, no renegotiation, no compression."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_ECDH_USE
    if hasattr(ssl, "OP_NO_RENEGOTIATION"):
        context.options |= ssl.OP_NO_RENEGOTIATION
    return context


# -- the server ----------------------------------------------------------------------------------

# Request line and each header field at most _MAX_LINE bytes, at most _MAX_HEADERS fields (the
# limits aiohttp applied before); the whole head is bounded too, as a field still being received
# is held by the parser until it ends.
_MAX_LINE = 8190
_MAX_HEADERS = 64
_MAX_HEAD = _MAX_LINE * (_MAX_HEADERS + 2)
_READ = 65536
_READS_PER_EVENT = 64  # one connection sending a large body does not starve the others
# After an error answer the connection is read and dropped for at most this long (or until the
# client closes), so the client sees the answer and not a reset from unread data it sent.
_LINGER = 5.0
# The loop sleeps at most this long: deadlines set by handler threads are seen within it.
_TICK = 0.5

_EPOLLIN = select.EPOLLIN | select.EPOLLONESHOT
_EPOLLOUT = select.EPOLLOUT | select.EPOLLONESHOT


class _State(enum.Enum):
    """Who owns a connection: the selector thread (HANDSHAKE, READING, WRITING, DRAINING: armed
    once in epoll, each with a deadline), a handler thread (BUSY) or a stream thread (STREAMING)."""

    HANDSHAKE = "handshake"
    READING = "reading"
    BUSY = "busy"
    WRITING = "writing"
    DRAINING = "draining"
    STREAMING = "streaming"
    CLOSED = "closed"


_HANDSHAKE, _READING, _BUSY, _WRITING, _DRAINING, _STREAMING, _CLOSED = (
    _State.HANDSHAKE, _State.READING, _State.BUSY, _State.WRITING, _State.DRAINING, _State.STREAMING, _State.CLOSED,
)  # fmt: skip
_TIMED = frozenset((_HANDSHAKE, _READING, _WRITING, _DRAINING))


class _After(enum.Enum):
    """What follows a response once it is written."""

    NEXT = "next"  # keep-alive: the next request
    CLOSE = "close"  # linger (the client's unread data is dropped, not answered with a reset), close


class _Refused(Exception):
    """A request refused before any handler sees it (malformed, too large, too slow)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Exchange:
    """One complete request as the parser read it."""

    method: str
    target: bytes
    version: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    started: float


class _Conn:
    """One client connection and the httptools parser reading it (this object is its protocol).

    Exactly one thread owns a connection at a time (see _State); the parser, the buffers and the
    socket are only touched by the owner."""

    __slots__ = (
        "after",
        "body",
        "body_size",
        "body_timeout",
        "deadline",
        "error",
        "expect",
        "fd",
        "head_bytes",
        "headers",
        "in_body",
        "in_head",
        "max_body",
        "method",
        "out",
        "parser",
        "peer_der",
        "ready",
        "refusal",
        "remote",
        "sock",
        "started",
        "state",
        "tls",
        "upgraded",
        "url",
        "want_read",
        "want_write",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, remote: str | None, *, tls: bool, max_body: int, body_timeout: float):
        self.sock = sock
        self.fd = sock.fileno()
        self.remote = remote
        self.tls = tls
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.peer_der: bytes | None = None
        self.state = _HANDSHAKE if tls else _READING
        self.deadline = 0.0
        self.parser = httptools.HttpRequestParser(self)
        self.ready: collections.deque[_Exchange] = collections.deque()
        self.error: _Refused | None = None  # answered (then closed) once the ready requests are
        self.refusal: _Refused | None = None  # raised by a parser callback
        self.out: memoryview | None = None
        self.after = _After.NEXT
        self.want_read = False  # a TLS write waits for the peer's data (or a read for a write)
        self.want_write = False
        self.upgraded = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.head_bytes = 0
        self.in_head = False  # a request's first byte arrived, its headers are not complete
        self.in_body = False  # its headers are complete, its body is not
        self.expect = False
        self.method = ""
        self.started = 0.0

    # -- httptools callbacks (raising stops the parser: feed_data raises HttpParserCallbackError)
    def on_message_begin(self) -> None:
        self.in_head = True
        self.started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > _MAX_LINE:
            self._refuse(400, f"request line longer than {_MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= _MAX_HEADERS:
            self._refuse(400, f"more than {_MAX_HEADERS} header fields")
        if len(name) > _MAX_LINE or len(value) > _MAX_LINE:
            self._refuse(400, f"header field longer than {_MAX_LINE} bytes")
        key = name.decode("latin-1").lower()
        if key in self.headers and key in ("content-length", "transfer-encoding", "host"):
            # (llhttp refuses repeated Content-Length and Transfer-Encoding itself: a second line of
            # defence against request smuggling, and one Host per request as RFC 9112 requires)
            self._refuse(400, f"repeated {key} header")
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_head, self.in_body = False, True
        self.method = self.parser.get_method().decode("ascii", "replace")
        headers = self.headers
        if "content-length" in headers and "transfer-encoding" in headers:
            self._refuse(400, "both Content-Length and Transfer-Encoding")  # (llhttp refuses it too)
        length = headers.get("content-length")
        if length is not None and int(length) > self.max_body:  # (llhttp checked it is digits)
            self._refuse(413, f"request body of {int(length)} bytes exceeds the limit of {self.max_body}")
        self.expect = headers.get("expect", "").lower() == "100-continue"
        self.deadline = time.monotonic() + self.body_timeout

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.max_body:
            self._refuse(413, f"request body exceeds the limit of {self.max_body} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.ready.append(
            _Exchange(
                self.method,
                self.url,
                self.parser.get_http_version(),
                self.headers,
                body,
                self.parser.should_keep_alive(),
                self.started,
            )
        )
        self._reset()

    def _refuse(self, status: int, message: str) -> None:
        self.refusal = _Refused(status, message)
        raise self.refusal


class _Outcome(enum.Enum):
    MORE = "more"  # nothing complete yet: wait for the client
    READY = "ready"  # a complete request (or an error to answer) is there
    EOF = "eof"  # the client closed, or the connection failed


@dataclass(frozen=True)
class Timeouts:
    """Per-connection limits, in seconds (see the module docstring for what each bounds)."""

    handshake: float = 5.0
    header: float = 10.0
    body: float = 30.0
    write: float = 30.0

    def __post_init__(self) -> None:
        for name in ("handshake", "header", "body", "write"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ConfigError(f"{name} timeout must be in (0, 3600] seconds, got {value}")


class HttpServer:
    """An HTTP(S) server: one selector thread and handler threads; ``port`` is known once constructed.

    The listening socket is bound in the constructor, so a port in use fails at once (ConfigError)
    before anything else opens. ``threads`` handler threads run complete requests; streams have
    their own threads (``max_streams``)."""

    def __init__(
        self,
        app: JsonApp,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        threads: int = 16,
        timeouts: Timeouts | None = None,
        max_body_bytes: int | None = None,
        max_streams: int = 64,
        name: str = "ftrust",
        access_log: bool = True,
        backlog: int = 512,
    ):
        self.app = app
        self.name = name
        self.tls = ssl_context is not None
        self.ssl_context = ssl_context
        self.timeouts = timeouts or Timeouts()
        self.max_body_bytes = app.max_body_bytes if max_body_bytes is None else max_body_bytes
        self.threads = threads
        self.max_streams = max_streams
        self.access_log = access_log
        self.backlog = backlog
        self.stopping = threading.Event()  # long-lived streams should end when this is set
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.create_server((host, port), family=family, backlog=backlog)
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {host}:{port} for {name}: {e.strerror or e}",
                hint="another process holds the port, or the address is not local",
            ) from None
        self._sock.setblocking(False)
        self._host = host
        self._access = logging.getLogger(f"floodlight_trust.access.{name}") if access_log else None
        self._thread: threading.Thread | None = None
        self._pool = _Handlers(threads, f"{name}-req")
        self._streams = threading.BoundedSemaphore(max_streams)
        self._stream_threads: set[threading.Thread] = set()
        self._counters: dict[int, Any] = {}
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._conns: dict[int, _Conn] = {}
        # Connections handler and stream threads give back to be closed (or drained) by the loop:
        # only the loop closes sockets it has registered, so a descriptor is never reused under it.
        self._handbacks: collections.deque[tuple[_Conn, bool]] = collections.deque()
        self._handback_lock = threading.Lock()
        self._loop_ended = False
        self._quit = False
        self._next = float("inf")  # the earliest deadline the loop knows of
        self._accept_paused_until = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> HttpServer:
        self._epoll.register(self._sock.fileno(), select.EPOLLIN)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, end open connections and streams, and join every thread of the server."""
        self.stopping.set()
        for conn in self._pool.shutdown():  # requests queued but not started
            if isinstance(conn, _Conn):
                conn.ready.clear()
                conn.out = memoryview(self._error_bytes(conn, _Refused(503, "server is stopping")))
                try:
                    self._send(conn)  # best effort: one non-blocking attempt
                except OSError:
                    pass
                self._hand_back(conn, drain=False)
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._quit = True
            self._wake()
            thread.join(timeout=10)
        self._thread = None
        if not self._loop_ended:  # never started: nothing registered but the sockets
            self._loop_ended = True
            self._close_loop_files()
        self._pool.join(timeout=5)
        for t in list(self._stream_threads):
            t.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._host}:{self.port}"

    # -- the selector thread ---------------------------------------------------------------------
    def _run(self) -> None:
        epoll, conns = self._epoll, self._conns
        listen_fd, wake_fd = self._sock.fileno(), self._wake_r
        last_sweep = time.monotonic()
        try:
            while not self._quit:
                now = time.monotonic()
                timeout = min(max(self._next - now, 0.0), _TICK)
                try:
                    events = epoll.poll(timeout)
                except InterruptedError:
                    continue
                for fd, _ in events:
                    if fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        self._take_handbacks()
                    else:
                        conn = conns.get(fd)
                        if conn is not None:
                            try:
                                self._on_event(conn)
                            except Exception:  # a bug with one connection: it ends, the others go on
                                log.exception("%s: a connection from %s failed", self.name, conn.remote)
                                self._close(conn)
                now = time.monotonic()
                # Also once per _TICK: a handler thread's deadline update can lose a race with a sweep.
                if now >= self._next or now >= last_sweep + _TICK:
                    self._sweep(now)
                    last_sweep = now
                if self._accept_paused_until and now >= self._accept_paused_until:
                    self._accept_paused_until = 0.0
                    epoll.modify(listen_fd, select.EPOLLIN)
        except Exception:  # a bug in the loop: logged; the listener is closed below, never silent
            log.exception("%s: the server's loop failed", self.name)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        with self._handback_lock:
            self._loop_ended = True
            handbacks = list(self._handbacks)
            self._handbacks.clear()
        for conn, _ in handbacks:
            self._close(conn)
        for conn in list(self._conns.values()):
            if conn.state in _TIMED:  # the others are closed by the thread that holds them
                self._close(conn)
        self._close_loop_files()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _close_loop_files(self) -> None:
        """The loop's own descriptors: epoll and the wake-up pipe (once the loop ended or never ran)."""
        self._epoll.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):  # the pipe is full: the loop wakes anyway
            pass

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:  # out of descriptors: wait a little instead of spinning
                log.warning("%s: cannot accept a connection: %s", self.name, e.strerror or e)
                self._accept_paused_until = time.monotonic() + 0.2
                self._epoll.modify(self._sock.fileno(), 0)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            remote = str(address[0]) if address else None
            if self.ssl_context is not None:
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ValueError):
                    sock.close()
                    continue
            conn = _Conn(
                sock, remote, tls=self.tls, max_body=self.max_body_bytes, body_timeout=self.timeouts.body
            )  # fmt: skip
            self._conns[conn.fd] = conn
            now = time.monotonic()
            self._set_deadline(conn, now + (self.timeouts.handshake if self.tls else self.timeouts.header))
            self._epoll.register(conn.fd, _EPOLLIN)

    def _on_event(self, conn: _Conn) -> None:
        state = conn.state
        if state is _READING:
            self._continue_reading(conn)
        elif state is _HANDSHAKE:
            self._handshake(conn)
        elif state is _WRITING:
            self._continue_writing(conn)
        elif state is _DRAINING:
            self._drain(conn)

    def _set_deadline(self, conn: _Conn, deadline: float) -> None:
        conn.deadline = deadline
        if deadline < self._next:  # (from a handler thread a lost race costs at most _TICK)
            self._next = deadline

    def _arm(self, conn: _Conn, events: int) -> None:
        """Give ``conn`` back to epoll for one event; from any thread."""
        try:
            self._epoll.modify(conn.fd, events)
        except (OSError, ValueError):  # the loop has ended (stop): nobody will read it
            self._hand_back(conn, drain=False)

    def _sweep(self, now: float) -> None:
        self._next = float("inf")
        for conn in list(self._conns.values()):
            if conn.state not in _TIMED:
                continue
            if conn.deadline > now:
                self._set_deadline(conn, conn.deadline)
            elif conn.state is _READING and conn.in_body:
                self._answer(conn, _Refused(408, f"request body not received in {self.timeouts.body:g} s"))
            else:  # a handshake, request headers, a keep-alive wait, a write or a linger timed out
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        conn.state = _CLOSED
        if self._conns.get(conn.fd) is conn:
            del self._conns[conn.fd]
            try:
                self._epoll.unregister(conn.fd)
            except (OSError, ValueError):
                pass
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _hand_back(self, conn: _Conn, *, drain: bool) -> None:
        """From a handler or stream thread: the loop closes ``conn`` (after lingering if ``drain``)."""
        with self._handback_lock:
            if not self._loop_ended:
                self._handbacks.append((conn, drain))
                self._wake()
                return
        conn.state = _CLOSED
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _take_handbacks(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                conn, drain = self._handbacks.popleft()
            except IndexError:
                return
            if drain:
                self._linger(conn)
            else:
                self._close(conn)

    def _handshake(self, conn: _Conn) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._arm(conn, _EPOLLIN)
            return
        except ssl.SSLWantWriteError:
            self._arm(conn, _EPOLLOUT)
            return
        except (OSError, ValueError) as e:  # (ssl.SSLError is an OSError) a scanner, a wrong CA, a reset
            log.debug("%s: TLS handshake with %s failed: %s", self.name, conn.remote, e)
            self._close(conn)
            return
        conn.peer_der = sock.getpeercert(binary_form=True)
        conn.state = _READING
        self._set_deadline(conn, time.monotonic() + self.timeouts.header)
        self._continue_reading(conn)  # the request may have come with the handshake's last flight

    # -- reading (the selector thread, or a handler thread that holds the connection) -------------
    def _read(self, conn: _Conn) -> _Outcome:
        sock, parser = conn.sock, conn.parser
        conn.want_write = False
        for _ in range(_READS_PER_EVENT):
            try:
                data = sock.recv(_READ)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                return _Outcome.MORE
            except ssl.SSLWantWriteError:
                conn.want_write = True
                return _Outcome.MORE
            except (OSError, ValueError):
                return _Outcome.EOF
            if not data:
                return _Outcome.EOF
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # No protocol upgrade here (h2c, websocket, CONNECT): the request is answered in
                # HTTP/1.1 and the connection closed, as what follows is in another protocol.
                # llhttp skips the body of an upgrade request: one that has a body is refused, so
                # its body is never taken for what follows it.
                conn.upgraded = True
                last = conn.ready.pop() if conn.ready else None
                if (
                    last is None
                    or "transfer-encoding" in last.headers
                    or last.headers.get("content-length", "0") != "0"
                ):
                    conn.error = _Refused(400, "protocol upgrade is not supported, and a body with it is not read")
                else:
                    conn.ready.append(dataclasses.replace(last, keep_alive=False))
                return _Outcome.READY
            except httptools.HttpParserError as e:
                conn.error = conn.refusal or _Refused(400, f"malformed request: {_cut(str(e), 200)}")
                return _Outcome.READY
            if conn.in_head:
                conn.head_bytes += len(data)
                if conn.head_bytes > _MAX_HEAD:
                    conn.error = _Refused(400, f"request head longer than {_MAX_HEAD} bytes")
                    return _Outcome.READY
            if conn.ready:
                return _Outcome.READY
            if conn.in_body and conn.deadline < self._next:  # the body's deadline, set by on_headers_complete
                self._next = conn.deadline
            if conn.in_body and conn.expect:
                conn.expect = False
                self._continue(conn)
        return _Outcome.MORE

    def _continue(self, conn: _Conn) -> None:
        """``Expect: 100-continue``: tell the client to send its body (one small non-blocking write)."""
        try:
            conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            pass  # the client sends its body anyway after a while
        except OSError:
            pass  # the next read sees the failure

    def _continue_reading(self, conn: _Conn) -> None:
        outcome = self._read(conn)
        if outcome is _Outcome.MORE:
            self._arm(conn, _EPOLLOUT if conn.want_write else _EPOLLIN)
        elif outcome is _Outcome.EOF:
            self._close(conn)
        elif conn.ready:
            conn.state = _BUSY
            try:
                self._pool.run(self._serve, conn)
            except RuntimeError:  # the pool is shut down
                conn.ready.clear()
                self._answer(conn, _Refused(503, "server is stopping"))
        else:
            assert conn.error is not None
            self._answer(conn, conn.error)

    def _answer(self, conn: _Conn, refused: _Refused) -> None:
        """An error answer written by the loop (no handler ran), then the connection lingers and closes."""
        conn.error = None
        conn.out = memoryview(self._error_bytes(conn, refused))
        conn.after = _After.CLOSE
        conn.state = _WRITING
        self._set_deadline(conn, time.monotonic() + self.timeouts.write)
        self._continue_writing(conn)

    def _error_bytes(self, conn: _Conn, refused: _Refused) -> bytes:
        log.info("%s: refused a request from %s: %d %s", self.name, conn.remote, refused.status, refused.message)
        self._count(refused.status)
        body = json.dumps(_error_doc("HttpError", refused.message), separators=(",", ":")).encode()
        return _head(refused.status, "application/json", len(body), (), close=True, http10=False) + body

    def _linger(self, conn: _Conn) -> None:
        """After the last answer on a connection: TLS close_notify and FIN at once (the client sees
        the end), then what the client still sends is read and dropped (raw, not decrypted) until
        it closes or _LINGER passes; closing with unread data would reset the connection, and the
        client could lose the answer."""
        conn.state = _DRAINING
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.unwrap()  # sends close_notify; the client's is not awaited
            except (OSError, ValueError):
                pass
        try:
            sock.shutdown(socket.SHUT_WR)  # (an SSLSocket's shutdown leaves it a plain socket)
        except OSError:
            pass
        self._set_deadline(conn, time.monotonic() + _LINGER)
        self._drain(conn)

    def _drain(self, conn: _Conn) -> None:
        for _ in range(_READS_PER_EVENT):
            try:
                if not conn.sock.recv(_READ):
                    break
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                self._arm(conn, _EPOLLIN)
                return
            except ssl.SSLWantWriteError:
                self._arm(conn, _EPOLLOUT)
                return
            except (OSError, ValueError):
                break
        else:
            self._arm(conn, _EPOLLIN)
            return
        self._close(conn)

    # -- writing ---------------------------------------------------------------------------------
    def _send(self, conn: _Conn) -> bool:
        """Write what is left of ``conn.out`` without blocking: True once all of it is written."""
        view, sock = conn.out, conn.sock
        assert view is not None
        conn.want_read = False
        while view:
            try:
                n = sock.send(view)
            except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                conn.out = view  # (an SSL write is retried with the same data, as OpenSSL requires)
                return False
            except ssl.SSLWantReadError:
                conn.out, conn.want_read = view, True
                return False
            view = view[n:]
        conn.out = None
        return True

    def _continue_writing(self, conn: _Conn) -> None:
        """The loop's part of a write: a response the client did not take at once, or an error answer."""
        try:
            done = self._send(conn)
        except (OSError, ValueError):
            self._close(conn)
            return
        if not done:
            self._arm(conn, _EPOLLIN if conn.want_read else _EPOLLOUT)
            return
        if conn.after is _After.CLOSE:
            self._linger(conn)
        elif conn.ready or conn.error:  # pipelined requests read with the previous one
            if conn.ready:
                conn.state = _BUSY
                try:
                    self._pool.run(self._serve, conn)
                except RuntimeError:
                    conn.ready.clear()
                    self._answer(conn, _Refused(503, "server is stopping"))
            else:
                assert conn.error is not None
                self._answer(conn, conn.error)
        else:
            self._keep_alive(conn)
            self._continue_reading(conn)

    def _keep_alive(self, conn: _Conn) -> None:
        """After a response: the header deadline starts again (or the body's, for a pipelined request)."""
        now = time.monotonic()
        self._set_deadline(conn, now + (self.timeouts.body if conn.in_body else self.timeouts.header))
        conn.state = _READING

    def _write_blocking(self, conn: _Conn, data: bytes, deadline: float) -> None:
        """A stream thread's write: waits (poll) for the socket until ``deadline``; TimeoutError past it."""
        conn.out = memoryview(data)
        while not self._send(conn):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the client did not take the data in time")
            poller = select.poll()
            poller.register(conn.fd, select.POLLIN if conn.want_read else select.POLLOUT)
            poller.poll(min(left, 1.0) * 1000)
            if self.stopping.is_set():
                raise TimeoutError("the server is stopping")

    # -- one request, in a handler thread ------------------------------------------------------------
    def _serve(self, conn: _Conn) -> None:
        """Run the connection's complete requests in order and write their answers; then give the
        connection back to the loop (or the write, if the client does not take it at once)."""
        try:
            self._serve_requests(conn)
        except Exception:  # a bug: this connection ends, logged; the thread and the server go on
            log.exception("%s: serving a connection from %s failed", self.name, conn.remote)
            self._hand_back(conn, drain=False)

    def _serve_requests(self, conn: _Conn) -> None:
        while True:
            if conn.ready:
                exchange = conn.ready.popleft()
                result = self._call(conn, exchange)
                if isinstance(result, StreamingResponse):
                    if self._open_stream(conn, exchange, result):
                        return
                    result = _json_response(
                        503, _error_doc("HttpError", f"too many open streams (limit {self.max_streams})")
                    )
                close = not exchange.keep_alive or self.stopping.is_set()
                conn.out = memoryview(self._response_bytes(conn, exchange, result, close))
                conn.after = _After.CLOSE if close else _After.NEXT
            elif conn.error is not None:
                refused, conn.error = conn.error, None
                conn.out = memoryview(self._error_bytes(conn, refused))
                conn.after = _After.CLOSE
            try:
                done = self._send(conn)
            except (OSError, ValueError):
                self._hand_back(conn, drain=False)
                return
            if not done:  # the client is slow to read: the loop writes the rest, bounded by its deadline
                conn.deadline = time.monotonic() + self.timeouts.write
                conn.state = _WRITING
                self._set_deadline(conn, conn.deadline)
                self._arm(conn, _EPOLLIN if conn.want_read else _EPOLLOUT)
                return
            if conn.after is not _After.NEXT:
                self._hand_back(conn, drain=True)
                return
            if conn.ready or conn.error is not None:
                continue
            if (
                isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()
            ):  # decrypted data epoll cannot see: read it now
                outcome = self._read(conn)
                if outcome is _Outcome.READY:
                    continue
                if outcome is _Outcome.EOF:
                    self._hand_back(conn, drain=False)
                    return
            self._keep_alive(conn)
            self._arm(conn, _EPOLLOUT if conn.want_write else _EPOLLIN)
            return

    def _call(self, conn: _Conn, exchange: _Exchange) -> Result:
        target = exchange.target
        if target[:1] == b"/":
            path_bytes, _, query = target.partition(b"?")
        elif target == b"*":
            path_bytes, query = target, b""
        else:  # absolute form (a proxy's request line)
            try:
                parts = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                return _json_response(400, _error_doc("HttpError", "malformed request target"))
            path_bytes, query = parts.path or b"/", parts.query or b""
        path = path_bytes.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        request = Request(
            method=exchange.method,
            path=path,
            headers=exchange.headers,
            body=exchange.body,
            query_string=query.partition(b"#")[0].decode("latin-1"),
            peer_certificate_der=conn.peer_der,
            remote=conn.remote,
        )
        try:
            return self.app.handle(request)
        except Exception:  # (JsonApp.handle never raises; another app's bug is a 500 too)
            log.exception("%s: internal error on %s %s", self.name, request.method, request.path[:200])
            return _json_response(500, _error_doc("InternalError", "internal error (see the server log)"))

    def _count(self, status: int) -> None:
        counter = self._counters.get(status)
        if counter is None:  # one child per status seen (labels() takes a lock and builds a key each call)
            counter = self._counters[status] = metrics.HTTP_REQUESTS.labels(
                listener=self.name, status=metrics.status_class(status)
            )
        counter.inc()

    def _response_bytes(self, conn: _Conn, exchange: _Exchange, response: RawResponse, close: bool) -> bytes:
        status = response.status
        self._count(status)
        body = response.body
        try:
            head = _head(status, response.content_type, len(body), response.headers, close, exchange.version == "1.0")
        except ValueError as e:  # a handler's header with a line break: never sent
            log.error("%s: bad response header on %s: %s", self.name, exchange.method, e)
            status, body = 500, json.dumps(_error_doc("InternalError", "internal error (see the server log)")).encode()
            head = _head(status, "application/json", len(body), (), close, exchange.version == "1.0")
        self._log_access(conn, exchange, status, len(body))
        return head if exchange.method == "HEAD" else head + body

    def _log_access(self, conn: _Conn, exchange: _Exchange, status: int, size: int) -> None:
        """One line per answer: client address, request line, status, body bytes, seconds."""
        access = self._access
        if access is not None and access.isEnabledFor(logging.INFO):
            access.info(
                '%s "%s %s HTTP/%s" %d %d %.6fs', conn.remote, exchange.method,
                exchange.target.decode("latin-1"), exchange.version, status, size,
                time.monotonic() - exchange.started,
            )  # fmt: skip

    # -- streams ---------------------------------------------------------------------------------
    def _open_stream(self, conn: _Conn, exchange: _Exchange, response: StreamingResponse) -> bool:
        if not self._streams.acquire(blocking=False):
            _close_iterator(response.chunks)
            return False
        self._count(response.status)
        conn.state = _STREAMING
        # One thread per stream (not the request pool): a long-lived stream never delays a request.
        thread = threading.Thread(
            target=self._run_stream, args=(conn, exchange, response), name=f"{self.name}-stream", daemon=True
        )
        self._stream_threads.add(thread)
        thread.start()
        return True

    def _run_stream(self, conn: _Conn, exchange: _Exchange, response: StreamingResponse) -> None:
        chunked = exchange.version != "1.0"
        write = self.timeouts.write
        sent = 0
        try:
            head = _head(response.status, response.content_type, None if chunked else -1, response.headers, True, False)
            self._write_blocking(conn, head, time.monotonic() + write)
            while not self.stopping.is_set():
                chunk = next(response.chunks, None)
                if chunk is None:
                    break
                if chunk:
                    data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                    self._write_blocking(conn, data, time.monotonic() + write)
                    sent += len(chunk)
            if chunked:
                self._write_blocking(conn, b"0\r\n\r\n", time.monotonic() + write)
        except (OSError, ValueError):  # the client went away (TimeoutError included), or a stop
            pass
        except Exception:  # a bug in the stream's iterator: logged, the connection ends
            log.exception("%s: a stream failed", self.name)
        finally:
            self._log_access(conn, exchange, response.status, sent)
            _close_iterator(response.chunks)
            self._streams.release()
            self._hand_back(conn, drain=True)
            self._stream_threads.discard(threading.current_thread())


_STATUS_LINES: dict[int, bytes] = {}
_DATE: list[Any] = [0.0, b""]  # (monotonic time it is due again, "Date: ..." line)


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = _STATUS_TEXT.get(status) or http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
    return line


def _head(
    status: int,
    content_type: str,
    length: int | None,
    headers: tuple[tuple[str, str], ...] | Mapping[str, str],
    close: bool,
    http10: bool,
) -> bytes:
    """A response's status line and headers. ``length``: the body's; None: chunked; -1: to the close."""
    tick = time.monotonic()
    if tick >= _DATE[0]:  # the Date line, made again at most once a second (clock.py reads the clock)
        wall = clock.now()
        _DATE[1] = b"Date: " + email.utils.format_datetime(wall.replace(microsecond=0), usegmt=True).encode() + b"\r\n"
        _DATE[0] = tick + 1.0 - wall.microsecond / 1e6
    parts = [_status_line(status), b"Content-Type: ", content_type.encode("latin-1"), b"\r\n", _DATE[1]]
    if length is None:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif length >= 0:
        parts.append(b"Content-Length: %d\r\n" % length)
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() in _FRAMING:
            continue
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"line break in response header {name[:64]!r}")
        parts.append(text.encode("latin-1") + b"\r\n")
    if "\r" in content_type or "\n" in content_type:
        raise ValueError("line break in the response's content type")
    if close:
        parts.append(b"Connection: close\r\n")
    elif http10:
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


_FRAMING = frozenset(("content-type", "content-length", "transfer-encoding", "connection", "date"))


class _Handlers:
    """The request handler threads: at most ``size``, started as requests need them (as
    ThreadPoolExecutor does), each running complete requests from one queue.

    A request is one queue item (no future: the thread that runs it writes the answer itself)."""

    def __init__(self, size: int, name: str):
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Any] | None] = queue.SimpleQueue()
        # One token per thread that finished a request and went back to the queue: a request that
        # takes a token needs no new thread. (deque's append and pop are atomic: no lock per request.)
        self._idle: collections.deque[None] = collections.deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def run(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """``fn(arg)`` in a handler thread; RuntimeError once shut down. ``fn`` handles its own errors."""
        if self._closed:
            raise RuntimeError("handler threads are shut down")
        self._queue.put((fn, arg))
        try:
            self._idle.pop()
        except IndexError:  # every thread is busy: start one more, up to ``size``
            with self._lock:
                if len(self._threads) < self.size and not self._closed:
                    t = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                    self._threads.append(t)
                    t.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, arg = item
            try:
                fn(arg)
            except Exception:  # (HttpServer._serve handles its errors: a bug, logged, the thread lives)
                log.exception("%s: a handler thread's work failed", self.name)
            del item, fn, arg
            self._idle.append(None)

    def shutdown(self) -> list[Any]:
        """No new work; each thread ends after what it runs. Returns the args of work queued but not
        started (the caller answers those)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        queued = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                queued.append(item[1])
        for _ in threads:
            self._queue.put(None)
        return queued

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))


def _close_iterator(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # a stream's cleanup failing must not affect the server
            log.exception("closing a stream failed")
