"""The Verification Manager's HTTPS API: its routes, each a thin call into the VerificationManager.

Endpoints (docs/openapi.yaml):

    agent-facing, authenticated by the quotes they carry (anyone may call; only evidence counts)
      POST /v1/nonces                 nonce_request -> nonce_response
      POST /v1/attest/host            host_evidence -> host_verdict
      POST /v1/enroll                 enclave_evidence -> enrollment
    admin, client certificate from the VM's CA with a SAN URI ``urn:ftrust:admin:NAME``
      GET  /v1/admin/hosts, POST /v1/admin/hosts {replace?}, DELETE /v1/admin/hosts/{host}?reason=
      POST /v1/admin/hosts/{host}/attest, POST /v1/admin/hosts/{host}/repin {reason?}
      POST /v1/admin/hosts/{host}/vnfs/{vnf}/enroll
      GET  /v1/admin/vnfs, POST /v1/admin/vnfs {host, vnf, enroll_rule?, mrenclave?}
      POST /v1/admin/hosts/{host}/vnfs/{vnf}/release {reason?}, DELETE /v1/admin/hosts/{host}/vnfs/{vnf}?reason=
      GET  /v1/admin/enrollments, GET /v1/admin/audit?since=
      POST /v1/admin/revoke
      GET  /v1/admin/reattest, POST /v1/admin/reattest {host?}      (issue 8: continuous re-attestation)
      POST /v1/admin/policy/reload {dry_run}                        (issue 8: reload-policy)
    public
      GET  /v1/health, GET /v1/ca.pem, GET /metrics (Prometheus)
    controller (client certificate with SAN URI ``urn:ftrust:controller:NAME``, or an admin's)
      GET  /v1/revocations/stream     long-lived NDJSON: each revocation as it commits (revocation_feed.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from floodlight_trust import clock, metrics
from floodlight_trust.errors import InputError, NotFoundError, UnauthenticatedEvidence
from floodlight_trust.http.server import JsonApp, RawResponse, Request
from floodlight_trust.manager.admins import admin_identity
from floodlight_trust.manager.client import check_agent_url
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING
from floodlight_trust.manager.reattest import ReattestScheduler
from floodlight_trust.manager.revocation_feed import (
    RevocationFeed,
    add_stream_route,
    revoked_serials,
    subscriber_identity,
)
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.protocol import validate

log = logging.getLogger("floodlight_trust.manager.api")


def _counted(endpoint: str, call: Callable[[], Any]) -> Any:
    """Run an agent-facing call; a refusal that records nothing is counted under its reason code."""
    try:
        return call()
    except (NotFoundError, UnauthenticatedEvidence) as e:
        metrics.count_unauthenticated(endpoint, e.code)
        raise


def make_api(
    vm: VerificationManager,
    *,
    max_body_bytes: int,
    scheduler: ReattestScheduler | None = None,
    policy_path: Path | None = None,
    admin_ca: Any = None,
    feed: RevocationFeed | None = None,
) -> JsonApp:
    """The VM's API; only certificates of ``admin_ca`` on record are admins (None: no admin)."""
    app = JsonApp(max_body_bytes=max_body_bytes, name="vm")
    scheduler = scheduler or ReattestScheduler(vm, interval_seconds=0)
    if feed is None:  # build_service passes the one it stops; otherwise one of our own
        feed = RevocationFeed(lambda: revoked_serials(vm.ca))
        if vm is not None:
            vm.revocation_listeners.append(feed.publish)

    def admin(request: Request) -> str:
        return admin_identity(request, admin_ca)

    add_stream_route(app, feed, lambda request: subscriber_identity(request, admin, vm.ca))

    @app.route("GET", "/v1/health")
    def health(request: Request) -> Any:
        doc = {
            "status": "ok",
            "policy_version": vm.policy_version,
            "simulated_sgx": vm.simulated,
            "reattest": {"interval_seconds": scheduler.interval, "rounds": scheduler.rounds},
        }
        if vm.simulated:
            doc["warning"] = SIMULATED_WARNING
        return doc

    app.add_operational_routes()  # GET /metrics (GET /v1/health is above)

    @app.route("GET", "/v1/ca.pem")
    def ca_pem(request: Request) -> RawResponse:
        return RawResponse(200, "application/x-pem-file", vm.issuer.certificate_pem)

    # -- agent-facing ----------------------------------------------------------------------------
    # Anyone may call these: a request for an unregistered name, or evidence that proves nothing,
    # is refused (404 / 403) and only counted (metrics.count_unauthenticated), never stored.
    @app.route("POST", "/v1/nonces")
    def nonces(request: Request) -> Any:
        body = request.json()
        validate("nonce_request", body)
        return _counted("/v1/nonces", lambda: vm.issue_nonce(body["purpose"], body["host"], body.get("vnf")))

    @app.route("POST", "/v1/attest/host")
    def attest_host(request: Request) -> Any:
        body = request.json()
        return _counted("/v1/attest/host", lambda: vm.attest_host_evidence(body, actor="agent").to_json())

    @app.route("POST", "/v1/enroll")
    def enroll(request: Request) -> Any:
        body = request.json()
        return _counted("/v1/enroll", lambda: vm.enroll_evidence(body, actor="agent").to_json())

    # -- admin -----------------------------------------------------------------------------------
    @app.route("GET", "/v1/admin/hosts")
    def hosts(request: Request) -> Any:
        admin(request)
        return {"hosts": [h.to_json() for h in vm.storage.hosts.all()]}

    @app.route("POST", "/v1/admin/hosts")
    def add_host(request: Request) -> Any:
        who = admin(request)
        body = request.json()
        validate("admin_host", body)
        pin = body.get("agent_certificate")
        if pin:
            try:
                x509.load_pem_x509_certificates(pin.encode())
            except ValueError:
                raise InputError("agent_certificate is not a PEM certificate") from None
        replace = bool(body.get("replace"))
        with vm.storage.transaction() as tx:  # the registration and its audit record: one transaction
            record = tx.hosts.add(
                body["name"],
                check_agent_url(body["agent_url"]),
                body.get("host_policy"),
                at=vm.now(),
                agent_tls_pem=pin,
                replace=replace,
            )
            tx.audit.record(
                at=vm.now(),
                actor=who,
                action="register-host",
                allowed=True,
                host=record.name,
                policy_version=vm.policy_version,
                evidence={"agent_url": record.agent_url, "host_policy": record.host_policy, "replace": replace},
            )
        log.info("%s registered host %s at %s", who, record.name, record.agent_url)
        return 201, record.to_json()

    @app.route("POST", "/v1/admin/hosts/{host}/tpm")
    def register_tpm(request: Request, host: str) -> Any:
        return vm.register_tpm(host, actor=admin(request))

    @app.route("DELETE", "/v1/admin/hosts/{host}")
    def remove_host(request: Request, host: str) -> Any:
        who = admin(request)
        reason = request.query.get("reason") or "removed by an admin"
        serials = vm.remove_host(host, actor=who, reason=reason[:500])
        log.info("%s removed host %s (%d certificate(s) revoked)", who, host, len(serials))
        return {"host": host, "removed": True, "revoked_serials": serials}

    @app.route("POST", "/v1/admin/hosts/{host}/repin")
    def repin_host(request: Request, host: str) -> Any:
        who = admin(request)
        body = request.json() if request.body else {}
        validate("admin_repin", body)
        record = vm.request_repin(host, actor=who, reason=body.get("reason") or "PCK certificate re-issued")
        log.warning("%s allowed host %s to re-pin its platform on its next trusted quote", who, host)
        return record.to_json()

    @app.route("POST", "/v1/admin/hosts/{host}/attest")
    def attest(request: Request, host: str) -> Any:
        return vm.attest_host(host, actor=admin(request)).to_json()

    @app.route("POST", "/v1/admin/hosts/{host}/vnfs/{vnf}/enroll")
    def admin_enroll(request: Request, host: str, vnf: str) -> Any:
        who = admin(request)
        body = request.json() if request.body else {}
        validate("admin_enroll", body)
        return vm.enroll(host, vnf, actor=who, key_mode=body.get("key_mode")).to_json()

    @app.route("GET", "/v1/admin/vnfs")
    def vnfs(request: Request) -> Any:
        admin(request)
        return {"vnfs": [v.to_json() for v in vm.storage.enrollments.vnfs()]}

    @app.route("POST", "/v1/admin/vnfs")
    def add_vnf(request: Request) -> Any:
        who = admin(request)
        body = request.json()
        validate("admin_vnf", body)
        doc = vm.register_vnf(
            body["host"], body["vnf"], actor=who, enroll_rule=body.get("enroll_rule"), mrenclave=body.get("mrenclave")
        )
        log.info("%s registered VNF %s on %s (enroll rule %s)", who, doc["vnf"], doc["host"], doc["enroll_rule"])
        return 201, doc

    @app.route("POST", "/v1/admin/hosts/{host}/vnfs/{vnf}/release")
    def release_vnf(request: Request, host: str, vnf: str) -> Any:
        who = admin(request)
        body = request.json() if request.body else {}
        validate("admin_repin", body)
        serials = vm.release_vnf(host, vnf, actor=who, reason=body.get("reason") or "released by an admin")
        log.warning("%s released VNF %s on %s from its enclave (%d revoked)", who, vnf, host, len(serials))
        return {"host": host, "vnf": vnf, "released": True, "revoked_serials": serials}

    @app.route("DELETE", "/v1/admin/hosts/{host}/vnfs/{vnf}")
    def remove_vnf(request: Request, host: str, vnf: str) -> Any:
        who = admin(request)
        reason = (request.query.get("reason") or "removed by an admin")[:500]
        serials = vm.release_vnf(host, vnf, actor=who, reason=reason, remove=True)
        return {"host": host, "vnf": vnf, "removed": True, "revoked_serials": serials}

    @app.route("GET", "/v1/admin/enrollments")
    def enrollments(request: Request) -> Any:
        admin(request)
        return {"enrollments": [e.to_json() for e in vm.storage.enrollments.enrollments()]}

    @app.route("POST", "/v1/admin/revoke")
    def revoke(request: Request) -> Any:
        who = admin(request)
        body = request.json()
        validate("admin_revoke", body)
        if not body.get("host") and not body.get("vnf"):
            raise InputError("say which VNF or host to revoke")
        serials = vm.revocation.revoke(host=body.get("host"), vnf=body.get("vnf"), reason=body["reason"], actor=who)
        return {"revoked_serials": serials}

    @app.route("GET", "/v1/admin/reattest")
    def reattest_status(request: Request) -> Any:
        admin(request)
        return scheduler.status()

    @app.route("POST", "/v1/admin/reattest")
    def reattest_now(request: Request) -> Any:
        who = admin(request)
        body = request.json() if request.body else {}
        validate("admin_reattest", body)
        host = body.get("host")
        if host:
            vm.storage.hosts.get(host)
        log.info("%s triggered a re-attestation round (%s)", who, host or "every trusted host")
        return scheduler.run_round([host] if host else None).to_json()

    @app.route("POST", "/v1/admin/policy/reload")
    def reload(request: Request) -> Any:
        who = admin(request)
        body = request.json() if request.body else {}
        validate("admin_reload", body)
        from floodlight_trust.manager.reload import reload_policy
        from floodlight_trust.policy_files import load_policy_file

        policy = load_policy_file(policy_path)
        return reload_policy(vm, policy, dry_run=bool(body.get("dry_run")), actor=who).to_json()

    @app.route("GET", "/v1/admin/audit")
    def audit(request: Request) -> Any:
        admin(request)
        since = request.query.get("since")
        at = clock.parse_time(since, what="since") if since else None
        return {"records": [r.to_json() for r in vm.storage.audit.records(since=at)]}

    return app


