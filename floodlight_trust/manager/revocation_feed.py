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

Every replica (``vm serve`` on the shared database) serves the stream from the shared state: a
revocation committed through this replica is pushed at once (the listener), and one committed
through any other replica (or by ``ftrust ca revoke``) is found by polling the records' revocation
marker every ``poll_seconds`` (a one-row query; the revoked serials are read only when it moved),
so it reaches this replica's subscribers within ``poll_seconds`` plus one query. ``seq`` numbers are
this replica's own: a subscriber that moves to another replica starts from its snapshot. When the
state cannot be read, the replica stops vouching for freshness: new subscriptions get 503 and open
ones end (no heartbeat from a replica that cannot see revocations), so the controller moves on.

The feed is plain data and threads: the route (``add_stream_route``) sits behind the app/route
plumbing of ``floodlight_trust.http`` and returns a :class:`~floodlight_trust.http.server.StreamingResponse`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from cryptography import x509

from floodlight_trust import clock
from floodlight_trust.errors import FtrustError
from floodlight_trust.http.server import HttpError, JsonApp, Request, StreamingResponse
from floodlight_trust.logs import StateChangeLog
from floodlight_trust.manager.enrollment import CONTROLLER_URI_PREFIX
from floodlight_trust.pki.records import serial_hex

log = logging.getLogger("floodlight_trust.manager.revocation_feed")

STREAM_PATH = "/v1/revocations/stream"
HEARTBEAT_SECONDS = 1.0
HISTORY = 1024  # revocation events kept for subscribers that are momentarily behind
MAX_SUBSCRIBERS = 8  # each subscription holds one server thread
POLL_SECONDS = 0.5  # how often the shared state is read for revocations made through other replicas

failures = StateChangeLog(log)


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
        marker: Callable[[], object] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ):
        """``marker`` (the records' revocation marker, changed by every committed revocation) turns on
        polling the shared state every ``poll_seconds`` once :meth:`start` is called."""
        self._revoked_serials = revoked_serials
        self._marker = marker
        self.poll_seconds = poll_seconds
        self._known: set[str] = set()  # serials already announced (snapshot, local, polled)
        self._fresh = time.monotonic()  # when the shared state was last read successfully
        self._poller: threading.Thread | None = None
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
        """The feed of ``ca``'s records, polling their revocation marker (shared state)."""
        return cls(partial(revoked_serials, ca), marker=ca.records.revocation_marker, **kw)

    def publish(self, serials: list[str]) -> None:
        """A revocation listener: called after the revocation committed."""
        with self._cond:
            self._announce(serials)

    def _announce(self, serials: list[str]) -> None:  # holding _cond
        fresh = [s for s in dict.fromkeys(serials) if s not in self._known]
        if not fresh:
            return
        self._known.update(fresh)
        self._seq += 1
        self._events.append(RevocationEvent(self._seq, self.now(), tuple(fresh)))
        self._cond.notify_all()

    # -- the shared state -------------------------------------------------------------------------
    def start(self) -> RevocationFeed:
        """Start polling the shared state (with a ``marker``); the first read happens before this returns."""
        if self._marker is None or self._poller is not None:
            return self
        last = self._poll(None, announce=False)  # what is revoked already is in every snapshot
        self._poller = threading.Thread(target=self._poll_loop, args=(last,), name="revocation-poll", daemon=True)
        self._poller.start()
        return self

    def _poll_loop(self, last: object) -> None:
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, timeout=self.poll_seconds):
                    return
            last = self._poll(last)

    def _poll(self, last: object, *, announce: bool = True) -> object:
        """Read the marker; when it moved, announce the revoked serials not yet announced."""
        assert self._marker is not None
        try:
            marker = self._marker()
            current = self._revoked_serials() if marker != last else None
        except FtrustError as e:
            failures.report(("state", id(self)), e.message, "revocation stream: cannot read the shared state: %s", e.message)
            with self._cond:
                self._cond.notify_all()  # open subscriptions notice they are stale
            return last
        except Exception as e:  # a driver error not mapped to StorageUnavailable: same treatment, logged once
            message = f"{type(e).__name__}: {str(e)[:200]}"
            failures.report(("state", id(self)), message, "revocation stream: cannot read the shared state: %s", message)
            return last
        failures.clear(("state", id(self)), "revocation stream: the shared state is readable again")
        with self._cond:
            self._fresh = time.monotonic()
            if current is not None:
                if announce:
                    self._announce(current)
                # Forget serials that left the list (expired), but not the ones of recent events.
                self._known = set(current) | {s for e in self._events for s in e.serials}
        return marker

    @property
    def behind(self) -> bool:
        """True when the last successful read of the shared state is older than two poll periods
        (and 1 s): no heartbeat then, since a heartbeat says "nothing revoked that you do not know"."""
        return self._poller is not None and time.monotonic() - self._fresh > 2 * self.poll_seconds + 1.0

    @property
    def stale(self) -> bool:
        """True when polling the shared state (once started) has failed for five poll periods and 3 s
        more (slack for a starved thread on a loaded machine: a false alarm ends subscriptions)."""
        return self._poller is not None and time.monotonic() - self._fresh > 5 * self.poll_seconds + 3.0

    def close(self) -> None:
        """End every subscription and the polling (the service is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.join(10)

    def subscribe(self, who: str) -> Iterator[bytes]:
        """The lines of one subscription; raises HttpError 503 when too many are open."""
        with self._cond:
            if self._closed:
                raise HttpError(503, "the Verification Manager is stopping", kind="Unavailable")
            if self.stale:
                raise HttpError(503, "this replica cannot read the shared state", kind="Unavailable")
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
                    if self.stale:  # a heartbeat would vouch for state this replica cannot see
                        log.warning("revocation stream: ending %s's subscription: shared state unreadable", who)
                        return
                    pending = [e for e in self._events if e.seq > last]
                    behind = bool(pending) and pending[0].seq > last + 1
                if behind:
                    last = yield from self._snapshot()
                    continue
                if not pending and not self.behind:
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
