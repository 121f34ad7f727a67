"""CRL and OCSP over plain HTTP, at the URLs the CA embeds in every certificate.

Relying parties (the JDK in Floodlight) fetch ``crl_url`` and POST to ``ocsp_url``; both answers are
signed, so plain HTTP is the norm (RFC 5280 / RFC 6960). The CRL is signed once and cached until a
revocation invalidates it (``invalidate`` is a workflow revocation listener: republish at once) or
a third of its validity has passed.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock
from floodlight_trust.http.server import HttpError, JsonApp, RawResponse, Request


class CrlPublisher:
    def __init__(self, ca: Any, *, next_update: timedelta, now: Callable[[], datetime] = clock.now):
        self.ca = ca
        self.next_update = next_update
        self.now = now
        self._lock = threading.Lock()
        self._cached: tuple[datetime, bytes] | None = None
        self._marker: tuple[int, datetime | None] | None = None
        self.generation = 0  # how many CRLs were signed (tests, the demo's narration)
        self.ocsp_answers = 0  # how many OCSP requests were answered

    def crl_der(self) -> bytes:
        at = self.now()
        # A revocation made by another process on the same state store (`ftrust ca revoke`) changes
        # the records' revocation marker: the next CRL request re-signs, so it shows at once.
        records = getattr(self.ca, "records", None)
        marker = records.revocation_marker() if records is not None else None
        with self._lock:
            if self._cached is None or at - self._cached[0] >= self.next_update / 3 or marker != self._marker:
                crl = self.ca.crl(at=at, next_update=self.next_update)
                self._cached = (at, crl.public_bytes(serialization.Encoding.DER))
                self._marker = marker
                self.generation += 1
            return self._cached[1]

    def invalidate(self, serials: list[str] | None = None) -> None:
        """Drop the cached CRL and sign a new one now (a revocation listener)."""
        with self._lock:
            self._cached = None
        self.crl_der()

    def ocsp(self, request_der: bytes) -> bytes:
        """The OCSP answer, from the certificate records at this instant (never cached: a committed
        revocation is in the very next answer)."""
        answer = bytes(self.ca.ocsp_response(request_der, at=self.now()))
        with self._lock:
            self.ocsp_answers += 1
        return answer


def make_publish_app(publisher: CrlPublisher, *, crl_url: str, ocsp_url: str) -> JsonApp:
    app = JsonApp(max_body_bytes=64 * 1024, name="publish")
    crl_path = urlsplit(crl_url).path or "/crl.der"
    ocsp_path = (urlsplit(ocsp_url).path or "/ocsp").rstrip("/") or "/ocsp"

    @app.route("GET", crl_path)
    def crl(request: Request) -> RawResponse:
        return RawResponse(200, "application/pkix-crl", publisher.crl_der(), (("Cache-Control", "no-cache"),))

    @app.route("POST", ocsp_path)
    def ocsp_post(request: Request) -> RawResponse:
        if not request.body:
            raise HttpError(400, "empty OCSP request")
        return RawResponse(200, "application/ocsp-response", publisher.ocsp(request.body))

    @app.route("GET", ocsp_path + "/{request_b64*}")
    def ocsp_get(request: Request, request_b64: str) -> RawResponse:  # RFC 6960 A.1 GET form
        try:
            der = base64.b64decode(unquote(request_b64), validate=True)
        except ValueError:
            raise HttpError(400, "OCSP GET request is not base64") from None
        return RawResponse(200, "application/ocsp-response", publisher.ocsp(der))

    @app.route("GET", "/ca.pem")
    def ca_pem(request: Request) -> RawResponse:
        return RawResponse(200, "application/x-pem-file", publisher.ca.certificate_pem)

    app.add_operational_routes(lambda: {"status": "ok", "crls_signed": publisher.generation})
    return app
