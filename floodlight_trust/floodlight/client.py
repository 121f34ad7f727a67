"""A real mutual-TLS GET against Floodlight's REST API (or the java-bridge endpoint).

:func:`check` reports what an operator needs to know: did TLS come up, which version, did the
server ask for a client certificate, was ours accepted or refused, and the response.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from floodlight_trust.errors import InputError, ServiceError
from floodlight_trust.secrets import Secret

HEALTH_PATH = "/wm/core/health/json"
SWITCHES_PATH = "/wm/core/controller/switches/json"
MEMORY_PATH = "/wm/core/memory/json"

_CERTIFICATE_REQUEST = 13  # TLS HandshakeType certificate_request (RFC 8446 4.3.2)


@dataclass(frozen=True, slots=True)
class CheckResult:
    url: str
    tls_version: str | None  # "TLSv1.3", ... (None if the handshake failed)
    client_cert_requested: bool | None  # None: could not be observed
    client_cert_sent: bool
    accepted: bool  # an HTTP response came back
    refused: bool  # the server refused the TLS session (no/unknown/revoked certificate)
    reason: str | None  # why it was refused, as TLS reported it
    status: int | None  # HTTP status
    body: Any  # parsed JSON (or text) of the response
    server_verified: bool  # the server's certificate was checked against ``ca``

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _context(
    cert_pem_path: str | Path | None,
    key_path: str | Path | None,
    ca: str | Path | None,
    key_password: Secret | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as e:
            raise InputError(f"cannot load CA certificate {ca}: {e}") from None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_pem_path is not None:
        if key_path is None:
            raise InputError("a client certificate needs its key (--key)")
        try:
            password = key_password.reveal_bytes() if key_password is not None else None
            ctx.load_cert_chain(str(cert_pem_path), str(key_path), password=password)
        except (OSError, ssl.SSLError) as e:
            # The ssl error text never contains the password.
            raise InputError(f"cannot load client certificate {cert_pem_path} / key {key_path}: {e}") from None
    return ctx


def check(
    url: str,
    cert_pem_path: str | Path | None,
    key_path: str | Path | None,
    ca: str | Path | None,
    *,
    path: str = HEALTH_PATH,
    timeout: float = 10.0,
    key_password: Secret | None = None,
) -> CheckResult:
    """GET ``path`` at ``url`` over a fresh TLS connection with the given client certificate.

    ``ca`` (a PEM file) verifies the server's certificate and host name; None skips that check and
    says so in ``server_verified``. ``key_password`` opens an encrypted (e.g. sealed) client key. A refusal by the server is a result, not an exception; a server
    that cannot be reached at all is a ServiceError.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(f"not an https URL: {url!r}", hint="e.g. https://127.0.0.1:8081")
    host, port = parts.hostname, parts.port or 443
    ctx = _context(cert_pem_path, key_path, ca, key_password)
    requested: list[bool] = []

    def observe(_conn: Any, direction: str, _version: Any, content_type: Any, msg_type: Any, _data: bytes) -> None:
        if direction == "read" and int(content_type) == 22 and int(msg_type) == _CERTIFICATE_REQUEST:
            requested.append(True)

    # CPython's handshake-message hook (debugging API): the only way to see a CertificateRequest.
    observable = hasattr(ctx, "_msg_callback")
    if observable:
        ctx._msg_callback = observe  # type: ignore[attr-defined]
    tls_version: str | None = None
    sent = cert_pem_path is not None

    def result(**kw: Any) -> CheckResult:
        was_requested = bool(requested) if observable else None
        return CheckResult(
            url=url,
            tls_version=tls_version,
            client_cert_requested=was_requested,
            client_cert_sent=sent and bool(was_requested if was_requested is not None else True),
            server_verified=ca is not None,
            **kw,
        )

    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise ServiceError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
    try:
        try:
            tls = ctx.wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            raise ServiceError(f"the server's certificate does not verify: {e.verify_message}") from None
        except (ssl.SSLError, ConnectionError) as e:
            return result(accepted=False, refused=True, reason=_reason(e), status=None, body=None)
        tls_version = tls.version()
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        conn.sock = tls  # the connection we just made, so the handshake above is the one used
        try:
            conn.request("GET", path, headers={"Connection": "close", "Accept": "application/json"})
            response = conn.getresponse()
            raw_body = response.read()
        except (TimeoutError, ssl.SSLError, ConnectionError, http.client.RemoteDisconnected) as e:
            # TLS 1.3: the server checks our certificate after its Finished, so a refusal
            # arrives as an alert on the first read.
            return result(accepted=False, refused=True, reason=_reason(e), status=None, body=None)
        finally:
            conn.close()
    finally:
        raw.close()
    try:
        body: Any = json.loads(raw_body)
    except ValueError:
        body = raw_body.decode("utf-8", "replace")
    return result(accepted=True, refused=False, reason=None, status=response.status, body=body)


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, http.client.RemoteDisconnected):
        return "connection closed by the server without a response"
    return f"{type(e).__name__}: {e}"
