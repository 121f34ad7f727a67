"""The HTTP plumbing both services share: a small JSON WSGI application and a cheroot server.

cheroot (CherryPy's production WSGI server) gives a thread pool, keep-alive, per-connection
timeouts and request size limits; TLS comes from an ``ssl.SSLContext`` the caller builds, so the
VM decides how client certificates are checked. Handlers receive a :class:`Request` and return a
JSON-able value (200), a ``(status, value)`` pair, or a :class:`RawResponse`. Errors of the
project's hierarchy become JSON error documents (schema ``error``) with a fitting status: bad input
400, verification failed or policy denied 403 (with every reason), remote service failure 502.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from floodlight_trust.errors import FtrustError, InputError, ServiceError, VerificationError

log = logging.getLogger("floodlight_trust.http")

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


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
    """A long-lived response: each chunk is sent as soon as the iterator yields it (no length).
    It should yield now and then (a heartbeat) so a closed client or a stopping server is noticed."""

    status: int
    content_type: str
    chunks: Iterator[bytes]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Request:
    method: str
    path: str
    environ: Mapping[str, Any]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        ctype = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip()
        if ctype != "application/json":
            raise HttpError(415, f"expected Content-Type application/json, got {ctype or 'none'!r}")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"request body is not JSON: {e}") from None

    @property
    def query(self) -> dict[str, str]:
        q = parse_qs(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True)
        return {k: v[-1] for k, v in q.items()}

    @property
    def client_certificate_pem(self) -> str | None:
        """The TLS client certificate (already verified against the server's CA by the TLS layer)."""
        cert = self.environ.get("SSL_CLIENT_CERT")
        return str(cert) if cert else None


Handler = Callable[..., Any]


class JsonApp:
    """A WSGI application routing ``(method, path pattern)`` to handlers; patterns use ``{name}``."""

    def __init__(self, *, max_body_bytes: int = 16 * 1024 * 1024, name: str = "ftrust"):
        self.max_body_bytes = max_body_bytes
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._patterns: list[tuple[str, str]] = []

    def route_patterns(self) -> list[tuple[str, str]]:
        """(method, pattern) of every route, as registered: what docs/openapi.yaml must describe."""
        return list(self._patterns)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        text = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)  # {name*}: the rest of the path
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9._-]+)", text) + "$")

        def register(fn: Handler) -> Handler:
            self._routes.append((method, regex, fn))
            self._patterns.append((method, pattern))
            return fn

        return register

    def _read_body(self, environ: Mapping[str, Any]) -> bytes:
        length_text = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length > self.max_body_bytes:
            raise HttpError(413, f"request body of {length} bytes exceeds the limit of {self.max_body_bytes}")
        if length <= 0:
            return b""
        body: bytes = environ["wsgi.input"].read(length)
        return body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        try:
            handler, params = self._match(method, path)
            request = Request(method, path, environ, self._read_body(environ), params)
            result = handler(request, **params)
            if isinstance(result, RawResponse):
                return self._send(start_response, result.status, result.content_type, result.body, result.headers)
            if isinstance(result, StreamingResponse):
                start_response(
                    f"{result.status} {_STATUS_TEXT.get(result.status, 'Status')}",
                    [("Content-Type", result.content_type), *result.headers],
                )
                return result.chunks
            status, value = result if isinstance(result, tuple) else (200, result)
            return self._json(start_response, status, value)
        except HttpError as e:
            return self._json(start_response, e.status, _error_doc(e.kind, e.message, e.hint))
        except FtrustError as e:
            status = 403 if isinstance(e, VerificationError) else 502 if isinstance(e, ServiceError) else 400
            status = int(getattr(e, "http_status", status))  # NotFoundError 404, ConflictError 409
            if not isinstance(e, InputError | VerificationError | ServiceError):
                status = 500
            doc = _error_doc(type(e).__name__, str(e), e.hint)
            reasons = getattr(e, "reasons", None)
            if reasons:
                doc["error"]["reasons"] = reasons
            return self._json(start_response, status, doc)
        except Exception:  # a bug in a handler: log it, answer 500 without internals
            log.exception("%s: internal error on %s %s", self.name, method, path)
            return self._json(start_response, 500, _error_doc("InternalError", "internal error (see the server log)"))

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, regex, fn in self._routes:
            found = regex.match(path)
            if found:
                if m == method:
                    return fn, found.groupdict()
                allowed = True
        if allowed:
            raise HttpError(405, f"method {method} not allowed on {path}")
        raise HttpError(404, f"no such resource: {path}")

    def _json(self, start_response: Callable[..., Any], status: int, value: Any) -> list[bytes]:
        body = json.dumps(value, separators=(",", ":")).encode()
        return self._send(start_response, status, "application/json", body)

    @staticmethod
    def _send(
        start_response: Callable[..., Any],
        status: int,
        ctype: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> list[bytes]:
        start_response(
            f"{status} {_STATUS_TEXT.get(status, 'Status')}",
            [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers],
        )
        return [body]


def _error_doc(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "hint": hint}}


class _ContextSSLAdapter(BuiltinSSLAdapter):  # type: ignore[misc]
    """cheroot's builtin adapter, but with an SSLContext built by us instead of one from files."""

    def __init__(self, context: ssl.SSLContext):
        # Skip BuiltinSSLAdapter.__init__ (it wants certificate files); set what it would have set.
        self.certificate = None
        self.private_key = None
        self.certificate_chain = None
        self.ciphers = None
        self.private_key_password = None
        self._server_env: dict[str, str] = {}
        self.context = context


class HttpServer:
    """A cheroot WSGI server in a background thread; ``port`` is known once started."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        threads: int = 16,
        timeout: int = 30,
        max_body_bytes: int = 16 * 1024 * 1024,
        name: str = "ftrust",
    ):
        self.server = wsgi.Server((host, port), app, numthreads=threads, timeout=timeout, request_queue_size=128)
        self.server.max_request_body_size = max_body_bytes
        self.server.max_request_header_size = 64 * 1024
        if ssl_context is not None:
            self.server.ssl_adapter = _ContextSSLAdapter(ssl_context)
        self.name = name
        self.tls = ssl_context is not None
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        self.server.prepare()
        self._thread = threading.Thread(target=self.server.serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        addr = self.server.bind_addr
        return int(addr[1])

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
