"""CRL and OCSP over plain HTTP, at the URLs the CA embeds in every certificate.

Relying parties (the JDK in Floodlight) fetch ``crl_url`` and POST to ``ocsp_url``; both answers are
signed, so plain HTTP is the norm (RFC 5280 / RFC 6960).

Every replica (``vm serve`` on the shared database) answers alike: each CRL request reads the
revocation marker of the shared records (one small query), and the CRL is re-signed when the
marker or the refresh period (a third of ``nextUpdate``) changed; its ``thisUpdate``, number and
entries come from the records and the period (``pki/crl.py``), never from this process, so two
replicas serve the same bytes. OCSP answers are computed per request from the records, with
``thisUpdate`` from the same periods. A replica whose database is gone answers 503 (and no CRL
it signed earlier: a stale CRL would hide revocations made through the other replicas).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock
from floodlight_trust.errors import StorageUnavailable
from floodlight_trust.http.server import HttpError, JsonApp, RawResponse, Request
from floodlight_trust.pki.crl import publication_time

log = logging.getLogger("floodlight_trust.manager.publish")

OCSP_VALIDITY = timedelta(minutes=1)


class CrlPublisher:
    """The CRL and OCSP answers of one replica, from the shared certificate records.

    ``check`` (the database's health check) runs before every answer and raises
    :class:`~floodlight_trust.errors.StorageUnavailable` when the state cannot be read.
    """

    def __init__(
        self,
        ca: Any,
        *,
        next_update: timedelta,
        now: Callable[[], datetime] = clock.now,
        check: Callable[[], None] | None = None,
    ):
        self.ca = ca
        self.next_update = next_update
        self.refresh = next_update / 3
        self.now = now
        self.check = check
        self._lock = threading.Lock()
        self._cached: tuple[object, bytes] | None = None
        self.generation = 0  # how many CRLs were signed (tests, the demo's narration)
        self.ocsp_answers = 0  # how many OCSP requests were answered

    def crl_der(self) -> bytes:
        """The CRL for the shared state now; re-signed only when the state or the period changed."""
        if self.check is not None:
            self.check()
        now = self.now()
        records = self.ca.records
        # A revocation made by any replica or by `ftrust ca revoke` changes the marker: the next
        # request re-signs, so it shows at once.
        key = (records.revocation_marker(), publication_time(now, None, self.refresh))
        with self._lock:
            if self._cached is None or self._cached[0] != key:
                revoked = records.revoked()
                latest = max((r.revoked_at for r in revoked if r.revoked_at is not None), default=None)
                at = publication_time(now, latest, self.refresh)
                crl = self.ca.crl(at=at, next_update=self.next_update)
                self._cached = (key, crl.public_bytes(serialization.Encoding.DER))
                self.generation += 1
            return self._cached[1]

    def invalidate(self, serials: list[str] | None = None) -> None:
        """Drop the cached CRL and sign a new one now (a revocation listener)."""
        with self._lock:
            self._cached = None
        try:
            self.crl_der()
        except StorageUnavailable as e:  # the revocation committed; the next request signs (or answers 503)
            log.warning("CRL not re-signed after a revocation: %s", e.message)

    def ocsp(self, request_der: bytes) -> bytes:
        """The OCSP answer, from the certificate records at this instant (never cached: a committed
        revocation is in the very next answer)."""
        if self.check is not None:
            self.check()
        answer = bytes(
            self.ca.ocsp_response(request_der, at=self.now(), validity=OCSP_VALIDITY, refresh=OCSP_VALIDITY / 3)
        )
        with self._lock:
            self.ocsp_answers += 1
        return answer

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 with ``status: ok`` when the state answers, else 503 with the one-line reason."""
        try:
            if self.check is not None:
                self.check()
        except StorageUnavailable as e:
            return 503, {"status": "unavailable", "reason": e.message, "crls_signed": self.generation}
        return 200, {"status": "ok", "crls_signed": self.generation}


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

    @app.route("GET", "/v1/health")
    def health(request: Request) -> Any:
        return publisher.health()

    app.add_operational_routes()
    return app
