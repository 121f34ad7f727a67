"""The revocation stream: the VM pushes every committed revocation to subscribed controllers.

``GET /v1/revocations/stream`` (HTTPS, client certificate with a controller or admin role) answers
with a long-lived ``application/x-ndjson`` body, one JSON object per line:

    {"type": "snapshot", "seq": 7, "at": "...", "heartbeat_seconds": 1.0, "revoked": ["5f3a...", ...]}
    {"type": "revoked", "seq": 8, "at": "...", "serials": ["1c0e..."]}
    {"type": "heartbeat", "seq": 8, "at": "..."}

The snapshot lists every revoked, unexpired serial (hex, as ``ftrust ca list`` prints them); each
``revoked`` line is one committed revocation, sent as soon as it commits (a workflow revocation
listener, like the CRL publisher); a heartbeat follows every ``heartbeat_seconds`` of silence, so a
subscriber always knows how old its knowledge is (the controller's trust provider fails closed past
its staleness bound). A subscriber that fell behind the kept history gets a fresh snapshot.

The feed is plain data and threads: the route (``add_stream_route``) sits behind the app/route
plumbing of ``floodlight_trust.http`` and returns a :class:`~floodlight_trust.http.server.StreamingResponse`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from cryptography import x509

from floodlight_trust import clock
from floodlight_trust.http.server import HttpError, JsonApp, Request, StreamingResponse
from floodlight_trust.manager.enrollment import CONTROLLER_URI_PREFIX
from floodlight_trust.pki.records import serial_hex

log = logging.getLogger("floodlight_trust.manager.revocation_feed")

STREAM_PATH = "/v1/revocations/stream"
HEARTBEAT_SECONDS = 1.0
HISTORY = 1024  # revocation events kept for subscribers that are momentarily behind
MAX_SUBSCRIBERS = 8  # each subscription holds one server thread


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    seq: int
    at: datetime
    serials: tuple[str, ...]


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class RevocationFeed:
    """Committed revocations in order, and the subscribers waiting for the next one."""

    def __init__(
        self,
        revoked_serials: Callable[[], list[str]],
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        max_subscribers: int = MAX_SUBSCRIBERS,
        now: Callable[[], datetime] = clock.now,
    ):
        self._revoked_serials = revoked_serials
        self.heartbeat_seconds = heartbeat_seconds
        self.max_subscribers = max_subscribers
        self.now = now
        self._cond = threading.Condition()
        self._events: deque[RevocationEvent] = deque(maxlen=HISTORY)
        self._seq = 0
        self._closed = False
        self.subscribers = 0
        self.pushed = 0  # revocation lines written to subscribers (tests, the demo's narration)

    @classmethod
    def for_ca(cls, ca: Any, **kw: Any) -> RevocationFeed:
        return cls(partial(revoked_serials, ca), **kw)

    def publish(self, serials: list[str]) -> None:
        """A revocation listener: called after the revocation committed."""
        if not serials:
            return
        with self._cond:
            self._seq += 1
            self._events.append(RevocationEvent(self._seq, self.now(), tuple(serials)))
            self._cond.notify_all()

    def close(self) -> None:
        """End every subscription (the service is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def subscribe(self, who: str) -> Iterator[bytes]:
        """The lines of one subscription; raises HttpError 503 when too many are open."""
        with self._cond:
            if self._closed:
                raise HttpError(503, "the Verification Manager is stopping", kind="Unavailable")
            if self.subscribers >= self.max_subscribers:
                raise HttpError(
                    503, f"too many revocation stream subscribers (at most {self.max_subscribers})", kind="Unavailable"
                )
            self.subscribers += 1
        return self._lines(who)

    def _lines(self, who: str) -> Iterator[bytes]:
        log.info("revocation stream: %s subscribed", who)
        try:
            last = yield from self._snapshot()
            while True:
                with self._cond:
                    self._cond.wait_for(partial(self._moved, last), timeout=self.heartbeat_seconds)
                    if self._closed:
                        return
                    pending = [e for e in self._events if e.seq > last]
                    behind = bool(pending) and pending[0].seq > last + 1
                if behind:
                    last = yield from self._snapshot()
                    continue
                if not pending:
                    yield _line({"type": "heartbeat", "seq": last, "at": clock.format_time(self.now())})
                for e in pending:
                    yield _line(
                        {"type": "revoked", "seq": e.seq, "at": clock.format_time(e.at), "serials": list(e.serials)}
                    )
                    self.pushed += 1
                    last = e.seq
        finally:
            with self._cond:
                self.subscribers -= 1
            log.info("revocation stream: %s unsubscribed", who)

    def _moved(self, last: int) -> bool:
        return self._seq > last or self._closed

    def _snapshot(self) -> Generator[bytes, None, int]:  # yields one line, returns its seq
        # seq first, then the records: a revocation committed in between is in both (harmless).
        with self._cond:
            seq = self._seq
        yield _line(
            {
                "type": "snapshot",
                "seq": seq,
                "at": clock.format_time(self.now()),
                "heartbeat_seconds": self.heartbeat_seconds,
                "revoked": self._revoked_serials(),
            }
        )
        return seq


def revoked_serials(ca: Any) -> list[str]:
    """Every revoked, unexpired serial of ``ca`` (hex): a subscription's snapshot."""
    return [serial_hex(r.serial) for r in ca.records.revoked(unexpired_at=clock.now())]


def subscriber_identity(request: Request, admin: Callable[[Request], str], ca: Any) -> str:
    """``controller:NAME`` for an unrevoked client certificate with a SAN URI
    ``urn:ftrust:controller:NAME``; else the admin check (401 without a certificate, 403 without a
    role). The TLS layer already checked that the certificate chains to a CA the VM trusts."""
    pem = request.client_certificate_pem
    if pem:
        cert = x509.load_pem_x509_certificate(pem.encode())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        names = [u[len(CONTROLLER_URI_PREFIX) :] for u in uris if u.startswith(CONTROLLER_URI_PREFIX)]
        if names:
            records = getattr(ca, "records", None)
            record = records.get(cert.serial_number) if records is not None else None
            if record is not None and record.revoked:
                raise HttpError(403, "controller certificate is revoked", kind="Forbidden")
            return f"controller:{names[0]}"
    return admin(request)


def add_stream_route(app: JsonApp, feed: RevocationFeed, authorize: Callable[[Request], str]) -> None:
    """Serve ``GET /v1/revocations/stream`` on ``app``; ``authorize`` names the subscriber or raises."""

    @app.route("GET", STREAM_PATH)
    def stream(request: Request) -> StreamingResponse:
        who = authorize(request)
        return StreamingResponse(200, "application/x-ndjson", feed.subscribe(who), (("Cache-Control", "no-store"),))


def issue_controller_credential(
    ca: Any, name: str, out_dir: Any, *, at: datetime, password: Any, validity_days: int = 365
) -> tuple[Any, Any]:
    """The controller's credential for the revocation stream: a client certificate with SAN URI
    ``urn:ftrust:controller:NAME`` (no VNF policy: the controller never accepts it as a VNF) and its
    key, as ``out_dir/NAME.p12`` (PKCS#12, AES-256 under ``password``, 0600, what the JDK loads) and
    ``out_dir/NAME.pem`` (the certificate). Returns (p12 path, certificate path)."""
    from pathlib import Path

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from floodlight_trust.fileio import atomic_write
    from floodlight_trust.pki.keys import generate_private_key
    from floodlight_trust.pki.profile import CertificateProfile, KeyType

    key = generate_private_key(KeyType.EC_P256)
    profile = CertificateProfile(
        subject=f"CN={name},OU=ftrust-controller",
        san_uris=(f"{CONTROLLER_URI_PREFIX}{name}",),
        validity_seconds=validity_days * 86400,
        key_type=KeyType.EC_P256,
    )
    issued = ca.issue(key.public_key(), profile, at=at)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)  # the JDK's own PKCS12 default (keystore.pkcs12.keyPbeIterationCount)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.reveal_bytes())
    )
    p12 = pkcs12.serialize_key_and_certificates(name.encode(), key, issued.certificate, None, encryption)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    p12_path, cert_path = out / f"{name}.p12", out / f"{name}.pem"
    atomic_write(p12_path, p12, mode=0o600)
    atomic_write(cert_path, issued.pem, mode=0o644)
    return p12_path, cert_path
