"""A running Verification Manager: the HTTPS API (``api.py``) and the plain-HTTP CRL/OCSP publisher
(``publish.py``) on the server plumbing of ``floodlight_trust.http``, the re-attestation loop and the
revocation feed, wired from the config (state, CAs, anchors, IAS and PCS, agent connections).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from floodlight_trust import clock, metrics
from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, Location
from floodlight_trust.http.server import HttpServer, Timeouts
from floodlight_trust.manager.api import make_api
from floodlight_trust.manager.client import AgentClient
from floodlight_trust.manager.context import ManagerSettings
from floodlight_trust.manager.publish import CrlPublisher, make_publish_app
from floodlight_trust.manager.quote_verification import CollateralFetcher, IasVerifier
from floodlight_trust.manager.reattest import ReattestScheduler, check_interval
from floodlight_trust.manager.revocation_feed import (
    RevocationFeed,
)
from floodlight_trust.manager.tls import ensure_server_certificate, server_context
from floodlight_trust.manager.trust_anchors import load_anchors, tpm_settings
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.secrets import Secret
from floodlight_trust.statestore import STATE_DB, open_admin_ca, open_ca, open_state
from floodlight_trust.storage.records import HostRecord

log = logging.getLogger("floodlight_trust.manager.service")

DB_FILE = STATE_DB  # the one state store (statestore.py)


@dataclass
class VmService:
    """A running VM: the HTTPS API and the CRL/OCSP publisher."""

    vm: VerificationManager
    api: HttpServer
    publish: HttpServer
    publisher: CrlPublisher
    tls_certificate: Path
    scheduler: ReattestScheduler
    admin_ca: Any = None  # issues the admin client certificates (never given to Floodlight)
    feed: RevocationFeed | None = None

    def start(self) -> VmService:
        """Start both listeners and the re-attestation loop; on any failure, stop what started."""
        try:
            if self.feed is not None:
                self.feed.start()  # polls the shared state for revocations made through other replicas
            self.publish.start()
            self.api.start()
            self.scheduler.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.scheduler.stop()
        if self.feed is not None:
            self.feed.close()  # ends the long-lived subscriptions so the API can stop
        self.api.stop()
        self.publish.stop()

    @property
    def api_url(self) -> str:
        return f"https://localhost:{self.api.port}"


def agent_trust(state_dir: Path, record: HostRecord) -> Path | bool:
    """What the VM trusts for an https agent: the host's pinned certificate/CA (written under
    ``<state>/agent-tls/`` for the TLS library), else the system trust store."""
    if not record.agent_tls_pem:
        return True
    from floodlight_trust.fileio import atomic_write

    path = state_dir / "agent-tls" / f"{record.name}.pem"
    if not path.is_file() or path.read_text() != record.agent_tls_pem:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, record.agent_tls_pem, mode=0o644)
    return path


def build_service(
    config: Config,
    *,
    password: Secret,
    policy: Any,
    anchors: list[Any] | None = None,
    threads: int = 16,
    now: Any = clock.now,
    policy_path: Path | None = None,
    reattest_interval_seconds: float | None = None,
) -> VmService:
    """Open state, CA and policy per ``config``; the service is not started yet.

    ``policy_path`` (default ``vm.policy``) is the file ``reload-policy`` reads again;
    ``reattest_interval_seconds`` overrides ``vm.reattest_interval_seconds`` (0 disables the loop).
    """
    db = open_state(config)
    ca = open_ca(config, password, db)
    from floodlight_trust.fileio import exclusive_lock

    # Replicas starting at once on one state directory: one creates the admin CA and the TLS
    # identity, the others wait and use them (else two keys race for one certificate file).
    with exclusive_lock(config.state_dir / "vm-start.lock"):
        admin_ca = open_admin_ca(config, password, db, create_at=clock.now())
        cert, key = ensure_server_certificate(
            config.state_dir / "vm-tls", [config.get("vm", "host")], at=clock.now(), password=password
        )
    vc = config.values["vm"]
    timeout = float(vc["request_timeout_seconds"])
    if not all(isinstance(r, str) for r in vc["self_registering_enroll_rules"]):
        raise ConfigError(
            "vm.self_registering_enroll_rules must be a list of enroll rule names",
            location=Location(config.source),
        )

    agents: dict[tuple[str, str | None], AgentClient] = {}

    def connect(record: HostRecord) -> AgentClient:
        # One client per agent URL and pinned certificate, kept: its connections (and TLS sessions)
        # stay alive between rounds. A new pin or URL gets a new client.
        assert record.agent_url
        key = (record.agent_url, record.agent_tls_pem)
        client = agents.get(key)
        if client is None:
            client = AgentClient(record.agent_url, timeout=timeout, verify=agent_trust(config.state_dir, record))
            agents[key] = client
        return client

    settings = ManagerSettings(
        nonce_ttl_seconds=vc["nonce_ttl_seconds"],
        host_trust_seconds=vc["reattest_interval_seconds"] + vc["grace_period_seconds"],
        grace_period_seconds=vc["grace_period_seconds"],
        key_mode=vc["key_mode"],
        require_linkable_epid=vc["require_linkable_epid"],
        renew_before_seconds=check_renew_before(vc["renew_before_seconds"], config),
        self_registering_rules=frozenset(vc["self_registering_enroll_rules"]),
    )
    vm = VerificationManager(
        storage=db,
        ca=ca,
        policy=policy,
        anchors=anchors if anchors is not None else load_anchors(config),
        settings=settings,
        connect=connect,
        now=now,
        ias=IasVerifier.from_config(config),
        collateral=CollateralFetcher.from_config(config),
    )
    vm.tpm_settings = tpm_settings(config)
    def soonest_expiry() -> Any:
        ends = [e.not_after for e in vm.storage.enrollments.enrollments(active_only=True)]
        return min(ends) if ends else None

    metrics.watch_expiry(soonest_expiry, lambda: ca.certificate.not_valid_after_utc, now)
    publisher = CrlPublisher(
        ca, next_update=timedelta(seconds=config.get("ca", "crl_next_update_seconds")), now=now, check=db.check
    )
    vm.revocation_listeners.append(publisher.invalidate)
    feed = RevocationFeed.for_ca(ca, poll_seconds=check_poll_seconds(vc["revocation_poll_seconds"], config))
    vm.revocation_listeners.append(feed.publish)
    interval = vc["reattest_interval_seconds"] if reattest_interval_seconds is None else reattest_interval_seconds
    scheduler = ReattestScheduler(
        vm, interval_seconds=check_interval(interval), lease_seconds=vc["reattest_lease_seconds"] or None
    )
    timeouts = listener_timeouts(config, "vm")
    api = HttpServer(
        make_api(
            vm,
            max_body_bytes=vc["max_request_bytes"],
            scheduler=scheduler,
            policy_path=policy_path if policy_path is not None else config.path("vm", "policy"),
            admin_ca=admin_ca,
            feed=feed,
        ),
        host=vc["host"],
        port=vc["port"],
        # A client certificate may chain to either CA at the TLS layer; admin_identity then admits
        # only the admin CA's certificates on record (a VNF certificate gets a 403, not a TLS alert).
        ssl_context=server_context(cert, key, admin_ca.certificate_pem + ca.certificate_pem, password),
        threads=threads,
        timeouts=timeouts,
        max_body_bytes=vc["max_request_bytes"],
        name="vm-api",
    )
    try:
        publish = HttpServer(
            make_publish_app(publisher, crl_url=config.get("ca", "crl_url"), ocsp_url=config.get("ca", "ocsp_url")),
            host=vc["host"],
            port=vc["crl_port"],
            threads=4,
            timeouts=timeouts,
            name="vm-publish",
        )
    except BaseException:
        api.stop()  # no listener stays open when the service cannot be built
        raise
    return VmService(vm, api, publish, publisher, cert, scheduler, admin_ca=admin_ca, feed=feed)


def listener_timeouts(config: Config, section: str) -> Timeouts:
    """The per-connection timeouts of ``section`` (``vm`` or ``agent``), located when out of range."""
    values = config.values[section]
    try:
        return Timeouts(
            handshake=float(values["tls_handshake_timeout_seconds"]),
            header=float(values["header_timeout_seconds"]),
            body=float(values["body_timeout_seconds"]),
            write=float(values["write_timeout_seconds"]),
        )
    except ConfigError as e:
        raise ConfigError(f"{section}: {e.message}", location=Location(config.source)) from None


def check_poll_seconds(value: float, config: Config) -> float:
    if not 0.05 <= value <= 60:
        raise ConfigError(
            f"vm.revocation_poll_seconds must be 0.05-60, got {value}",
            location=Location(config.source),
            hint="how soon a revocation made through another replica reaches this one's stream",
        )
    return float(value)


def check_renew_before(value: int, config: Config) -> int:
    if value < 0:
        raise ConfigError(
            f"vm.renew_before_seconds must be >= 0, got {value}",
            location=Location(config.source),
            hint="renew a VNF certificate when less than this is left of it (0: only once expired)",
        )
    return value
