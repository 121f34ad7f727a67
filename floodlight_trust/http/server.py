"""The HTTP plumbing the VM and the agent share: a small JSON application and an asyncio server.

Why asyncio (aiohttp's server) and not a thread-per-connection server: a client that never finishes
its TLS handshake or its request headers must not hold anything another client needs. Here the
handshake and the reading of a request happen on one event loop, concurrently for every
connection, each bounded by its own timeout; only a *complete* request (headers and body read)
reaches a handler thread. cheroot, before, did the handshake in its accept thread (one idle TCP
connection stalled every new client for 30 s) and read headers in its worker threads (4 slow
clients stopped the CRL/OCSP port). The timeouts (:class:`Timeouts`, documented in
docs/operator-guide.md and configs/ftrust.toml):

- ``handshake``: a TLS handshake not complete by then is dropped (``ssl_handshake_timeout``).
- ``header``: from the moment a connection opens, or a response ends, until the next request's
  headers are complete; sending a byte now and then does not extend it (slowloris). It is also the
  idle time of a kept-alive connection.
- ``body``: the request body must arrive within this.

Handlers receive a :class:`Request` and return a JSON-able value (200), a ``(status, value)`` pair,
a :class:`RawResponse`, or a :class:`StreamingResponse` (a long-lived response whose chunks come
from an iterator run in a thread of its own, so a stream never occupies a request handler thread).
Errors of the project's hierarchy become JSON error documents (schema ``error``) with a fitting
status: bad input 400, verification failed or policy denied 403 (with every reason), remote service
failure 502. A client's error is logged as one line, never as a traceback; a handler bug is a 500
with its traceback in the server log and no internals in the answer.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import queue
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from floodlight_trust import metrics
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


class _OneLineClientErrors(logging.Filter):
    """aiohttp logs a malformed request (bad request line, header or chunk) as an ERROR with a
    traceback; it is the client's error: one INFO line with the reason. (Handlers never raise into
    aiohttp: JsonApp.handle answers every exception itself.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message = record.getMessage()
            record.msg = "%s: %s: %s"
            record.args = (message, type(error).__name__, _cut(str(error).replace("\n", " "), 200))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_protocol_log = logging.getLogger("floodlight_trust.http.protocol")
_protocol_log.addFilter(_OneLineClientErrors())


@dataclass(frozen=True)
class Timeouts:
    """Per-connection limits, in seconds (see the module docstring for what each bounds)."""

    handshake: float = 5.0
    header: float = 10.0
    body: float = 30.0

    def __post_init__(self) -> None:
        for name in ("handshake", "header", "body"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ConfigError(f"{name} timeout must be in (0, 3600] seconds, got {value}")


class HttpServer:
    """An HTTP(S) server on its own event loop thread; ``port`` is known once constructed.

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
        self._host = host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._pool = _Handlers(threads, f"{name}-req")
        self._streams = threading.BoundedSemaphore(max_streams)
        self._counters: dict[int, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> HttpServer:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self.name, daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as e:  # reported to start(); this thread ends
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._cleanup())
            loop.close()

    async def _start_site(self) -> None:
        from aiohttp import web

        access = logging.getLogger(f"floodlight_trust.access.{self.name}") if self.access_log else None
        server = web.Server(
            self._handle,
            keepalive_timeout=self.timeouts.header,
            max_line_size=8190,
            max_field_size=8190,
            max_headers=64,
            access_log=access,
            access_log_format='%a "%r" %s %b %Tfs',
            handler_cancellation=True,
            logger=_protocol_log,
        )
        runner = web.ServerRunner(server, shutdown_timeout=2.0, handle_signals=False)
        await runner.setup()
        self._runner = runner
        loop = asyncio.get_running_loop()
        # aiohttp's sites do not pass a handshake timeout; asyncio's own server does.
        self._aserver = await loop.create_server(
            server,
            sock=self._sock,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.timeouts.handshake if self.ssl_context else None,
            backlog=self.backlog,
        )

    async def _cleanup(self) -> None:
        aserver = getattr(self, "_aserver", None)
        if aserver is not None:
            aserver.close()
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop listening, end open connections, and join the loop thread."""
        self.stopping.set()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = None
        self._pool.shutdown()
        try:
            self._sock.close()
        except OSError:
            pass

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._host}:{self.port}"

    # -- one request -----------------------------------------------------------------------------
    async def _handle(self, raw: Any) -> Any:
        from aiohttp import web

        response = await self._respond(raw)
        counter = self._counters.get(response.status)
        if counter is None:  # one child per status seen (labels() takes a lock and builds a key each call)
            counter = self._counters[response.status] = metrics.HTTP_REQUESTS.labels(
                listener=self.name, status=metrics.status_class(response.status)
            )
        counter.inc()
        if isinstance(response, StreamingResponse):
            return await self._stream(raw, response)
        headers = dict(response.headers)
        headers["Content-Type"] = response.content_type
        return web.Response(status=response.status, body=response.body, headers=headers)

    async def _respond(self, raw: Any) -> Result:
        length = raw.content_length
        if length is not None and length > self.max_body_bytes:
            return _json_response(
                413,
                _error_doc("HttpError", f"request body of {length} bytes exceeds the limit of {self.max_body_bytes}"),
            )
        content = raw.content
        if content.is_eof():  # the whole body came with the headers (the usual case): nothing to wait for
            body = content.read_nowait()
            if len(body) > self.max_body_bytes:
                e = self._body_too_large()
                return _json_response(e.status, _error_doc(e.kind, e.message))
        else:
            try:
                # asyncio.timeout, not wait_for: no task of its own per request for the body.
                async with asyncio.timeout(self.timeouts.body):
                    body = await self._read_body(raw)
            except TimeoutError:
                return _json_response(
                    408, _error_doc("HttpError", f"request body not received in {self.timeouts.body} s")
                )
            except HttpError as e:
                return _json_response(e.status, _error_doc(e.kind, e.message))
        transport = raw.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        peer = transport.get_extra_info("peername") if transport is not None else None
        request = Request(
            method=raw.method,
            path=raw.path,
            headers={k.lower(): v for k, v in raw.headers.items()},
            body=body,
            query_string=raw.query_string,
            peer_certificate_der=ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None,
            remote=str(peer[0]) if peer else None,
        )
        try:
            result: Result = await self._pool.run(asyncio.get_running_loop(), self.app.handle, request)
            return result
        except RuntimeError:  # the pool is shut down: the server is stopping
            return _json_response(503, _error_doc("HttpError", "server is stopping"))

    def _body_too_large(self) -> HttpError:
        return HttpError(413, f"request body exceeds the limit of {self.max_body_bytes} bytes")

    async def _read_body(self, raw: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        content = raw.content
        while not content.at_eof():  # (a body read whole needs no further read to see its end)
            chunk = await content.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._body_too_large()
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _stream(self, raw: Any, response: StreamingResponse) -> Any:
        from aiohttp import web

        if not self._streams.acquire(blocking=False):
            _close_iterator(response.chunks)
            doc = _error_doc("HttpError", f"too many open streams (limit {self.max_streams})")
            return web.Response(status=503, body=json.dumps(doc).encode(), content_type="application/json")
        out = web.StreamResponse(status=response.status, headers=dict(response.headers))
        out.content_type = response.content_type
        loop = asyncio.get_running_loop()
        # One thread per stream (not the request pool): a long-lived stream never delays a request.
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-stream")
        try:
            await out.prepare(raw)
            while not self.stopping.is_set():
                chunk = await loop.run_in_executor(executor, next, response.chunks, None)
                if chunk is None:
                    break
                await out.write(chunk)
            await out.write_eof()
        except ConnectionError:  # the client went away
            pass
        finally:
            executor.submit(_close_iterator, response.chunks)
            executor.shutdown(wait=False)
            self._streams.release()
        return out


class _Handlers:
    """The request handler threads: at most ``size``, started as requests need them (as
    ThreadPoolExecutor does), each running complete requests from one queue.

    Lighter than ``run_in_executor``: a request is one queue item and one ``call_soon_threadsafe``
    back to the loop, with no concurrent.futures.Future (its condition variable and callbacks)
    chained to an asyncio future. ``JsonApp.handle`` never raises; anything else a thread runs
    that raises is passed to the waiting coroutine."""

    def __init__(self, size: int, name: str):
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        # One token per thread that finished a request and went back to the queue: a request that
        # takes a token needs no new thread. (deque's append and pop are atomic: no lock per request.)
        self._idle: collections.deque[None] = collections.deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """An asyncio future of ``fn(arg)`` run in a handler thread; RuntimeError once shut down."""
        if self._closed:
            raise RuntimeError("handler threads are shut down")
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, fn, arg))
        try:
            self._idle.pop()
        except IndexError:  # every thread is busy: start one more, up to ``size``
            with self._lock:
                if len(self._threads) < self.size and not self._closed:
                    t = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                    self._threads.append(t)
                    t.start()
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, future, fn, arg = item
            try:
                result, error = fn(arg), None
            except BaseException as e:  # (JsonApp.handle never raises: a bug, passed on)
                result, error = None, e
            del item, fn, arg
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: the server stopped, nobody waits
                pass
            del future, result, error
            self._idle.append(None)

    def shutdown(self) -> None:
        """No new requests; each thread ends after the request it runs; queued ones are cancelled."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:  # requests queued but not started are cancelled (as cancel_futures did)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                try:
                    item[0].call_soon_threadsafe(item[1].cancel)
                except RuntimeError:  # the loop is closed already
                    pass
        for _ in threads:
            self._queue.put(None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request's task was cancelled (client gone): nobody waits for it
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _close_iterator(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # a stream's cleanup failing must not affect the server
            log.exception("closing a stream failed")
