"""The project's one HTTP client stack: urllib3, for the VM's and agents' JSON clients
(``manager/client.py``) and the IAS and PCS/PCCS clients (``clients/ias.py``, ``clients/pcs.py``).

One pool per client keeps connections alive; TLS is what the caller configures (a pinned CA file,
the system store, a client certificate), never taken from the environment (no proxy variables,
no REQUESTS_CA_BUNDLE); no retries (a caller decides); a transport failure is a ServiceError that
names what was being fetched and where.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3

from floodlight_trust.errors import ServiceError


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    data: bytes


_system_context: ssl.SSLContext | None = None
_system_context_lock = threading.Lock()


def system_tls_context() -> ssl.SSLContext:
    """Verify servers against the system's CA store, TLS 1.2 or later (Intel's IAS and PCS).

    One context per process, shared by every client that asks for it (read-only: a caller that
    needs other settings, such as a client certificate, builds its own). Loading the system store
    costs about 40 ms of CPU; building it per client cost each host's first round that much again
    (the VM keeps one client per agent)."""
    global _system_context
    with _system_context_lock:
        if _system_context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            _system_context = context
        return _system_context


def new_pool(*, timeout: float, ssl_context: ssl.SSLContext | None = None, maxsize: int = 16) -> urllib3.PoolManager:
    """A keep-alive pool; ``maxsize`` connections per host so threads sharing a client reuse theirs."""
    return urllib3.PoolManager(
        num_pools=4,
        maxsize=maxsize,
        retries=False,
        timeout=urllib3.Timeout(total=timeout),
        ssl_context=ssl_context if ssl_context is not None else system_tls_context(),
    )


def send(
    pool: urllib3.PoolManager,
    method: str,
    url: str,
    *,
    what: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    tls_hint: str | None = None,
    max_bytes: int | None = None,
) -> Response:
    """One request; a TLS or transport failure is a ServiceError naming ``what`` and ``url``.

    With ``max_bytes``, an answer longer than that is refused (ServiceError) without buffering
    more of it: a hostile peer cannot make the caller hold an unbounded body."""
    try:
        r = pool.request(
            method,
            url,
            body=body,
            headers=dict(headers) if headers else None,
            redirect=False,
            preload_content=max_bytes is None,
        )
    except urllib3.exceptions.SSLError as e:
        raise ServiceError(f"TLS with {what} at {url} failed: {e}", hint=tls_hint) from None
    except urllib3.exceptions.HTTPError as e:
        raise ServiceError(f"{what} at {url} is unreachable: {type(e).__name__}") from None
    if max_bytes is None:
        return Response(r.status, r.reason or "", r.headers, r.data)
    try:
        data = r.read(max_bytes + 1)
    except urllib3.exceptions.HTTPError as e:
        raise ServiceError(f"reading the answer of {what} at {url} failed: {type(e).__name__}") from None
    finally:
        r.release_conn()
    if len(data) > max_bytes:
        raise ServiceError(f"{what} at {url} answered more than {max_bytes} bytes")
    return Response(r.status, r.reason or "", r.headers, data)
