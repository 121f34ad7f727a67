"""``ftrust vm reload-policy``: judge every enrollment again under a new policy, then revoke.

- VNFs: the enclave claims each live certificate was issued on (stored with its enrollment) are
  evaluated against the new policy's enroll rule for the VNF: no rule any more, a host policy that
  no longer fits, or an enclave policy the claims no longer satisfy (e.g. its MRENCLAVE was removed)
  means revocation.
- Hosts: the IMA list judged so far under the old policy is not trusted under the new one by
  inference. Each trusted host is challenged for fresh evidence, which is judged *in full* under the
  new policy, in a scratch Verification Manager (a temporary database), so a dry run changes
  nothing. An untrusted verdict means every VNF on the host is revoked.

Without ``dry_run`` the new policy is swapped in first (decisions from then on use it), every
revocation is made in ONE transaction and the CRL republished once. The next re-attestation round
appraises every host's whole IMA list again under the new policy version (its incremental state
belonged to the old one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from floodlight_trust.claims import ClaimSet, enclave_from_json
from floodlight_trust.errors import FtrustError
from floodlight_trust.manager.workflow import (
    Reason,
    VerificationManager,
    decision_reasons,
    denial_summary,
    denials,
)
from floodlight_trust.storage.records import HostAttestationRecord, HostRecord
from floodlight_trust.storage.sqlite import SqliteStorage

log = logging.getLogger("floodlight_trust.manager.reload")


@dataclass
class VnfJudgement:
    host: str
    vnf: str
    serial: str
    allowed: bool
    reasons: list[Reason]

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "vnf": self.vnf,
            "serial": self.serial,
            "allowed": self.allowed,
            "reasons": [r.to_json() for r in self.reasons],
        }


@dataclass
class HostJudgement:
    host: str
    trusted: bool
    reasons: list[Reason]
    ima_entries: int

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "trusted": self.trusted,
            "reasons": [r.to_json() for r in self.reasons],
            "ima_entries": self.ima_entries,
        }


@dataclass
class ReloadReport:
    dry_run: bool
    old_policy_version: str | None
    new_policy_version: str
    hosts: list[HostJudgement]
    vnfs: list[VnfJudgement]
    revocations: list[dict[str, Any]]  # {host, vnf (None: every VNF of the host), why, serials}
    revoked_serials: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "applied": not self.dry_run,
            "old_policy_version": self.old_policy_version,
            "new_policy_version": self.new_policy_version,
            "hosts": [h.to_json() for h in self.hosts],
            "vnfs": [v.to_json() for v in self.vnfs],
            "revocations": self.revocations,
            "revoked_serials": self.revoked_serials,
        }


def judge_vnfs(vm: VerificationManager, policy: Any) -> list[VnfJudgement]:
    """Every active enrollment's stored enclave claims under ``policy`` (no I/O beyond the state)."""
    at = vm.now()
    out = []
    hosts = {h.name: h for h in vm.storage.hosts.all()}
    for e in vm.storage.enrollments.enrollments(active_only=True):
        reasons: list[Reason] = []
        stored = vm.storage.enrollments.enclave_claims(e.serial)
        rule = policy.enroll_rule(e.vnf)
        if rule is None:
            reasons.append(Reason("policy.enroll", f"no enroll rule of policy {policy.version} admits VNF {e.vnf!r}"))
        elif stored is None:
            reasons.append(
                Reason("reload.claims", "no enclave claims stored with this enrollment: it cannot be re-judged")
            )
        else:
            host = hosts.get(e.host)
            host_policy = host.host_policy if host and host.host_policy else _only_host_policy(policy)
            if rule.host_policy and host_policy and rule.host_policy != host_policy:
                reasons.append(
                    Reason(
                        "policy.enroll",
                        f"VNF {e.vnf!r} may only run on hosts under host policy {rule.host_policy!r}; "
                        f"host {e.host!r} is judged by {host_policy!r}",
                    )
                )
            try:
                claims = enclave_from_json(stored)
                decision = policy.evaluate_enclave(
                    rule.enclave_policy, ClaimSet(verified_at=at, enclave=claims, subject=e.vnf)
                )
                reasons.extend(decision_reasons(decision))  # notes too (simulated SGX allowed, ...)
            except FtrustError as err:
                reasons.append(Reason("reload.claims", err.message))
        out.append(VnfJudgement(e.host, e.vnf, e.serial, not denials(reasons), reasons))
    return out


def _only_host_policy(policy: Any) -> str | None:
    names = list(getattr(policy, "host_policies", []) or [])
    return str(names[0]) if len(names) == 1 else None


def judge_hosts(vm: VerificationManager, policy: Any) -> list[HostJudgement]:
    """Fresh evidence of every trusted host, judged in full under ``policy`` in a scratch VM."""
    hosts = [h for h in vm.storage.hosts.all() if h.status == "trusted"]
    if not hosts:
        return []
    out = []
    if True:  # a scratch VM on a throwaway in-memory store
        scratch = VerificationManager(
            storage=SqliteStorage(":memory:"),
            ca=None,
            policy=policy,
            anchors=vm.anchors,
            key_mode=vm.key_mode,
            connect=vm.connect,
            now=vm.now,
        )
        for h in hosts:
            if not h.agent_url:
                out.append(
                    HostJudgement(h.name, False, [Reason("reload.host", "no agent URL: cannot be re-judged")], 0)
                )
                continue
            scratch.storage.hosts.add(h.name, h.agent_url, h.host_policy, at=vm.now())
            scratch.storage.hosts.record_attestation(h.name, _pinned_as(h))  # the platform pinned as in the real state
            try:
                verdict = scratch.attest_host(h.name, actor="reload-policy")
            except FtrustError as e:
                out.append(HostJudgement(h.name, False, [Reason("reload.host", e.message)], 0))
                continue
            if any(r.rule == "agent.unreachable" for r in verdict.reasons):
                # Unreachable now is the re-attestation loop's business (grace period), not the policy's.
                out.append(HostJudgement(h.name, True, list(verdict.reasons), 0))
                continue
            out.append(HostJudgement(h.name, verdict.trusted, list(verdict.reasons), verdict.ima_entries))
        scratch.storage.close()
    return out


def reload_policy(vm: VerificationManager, policy: Any, *, dry_run: bool, actor: str) -> ReloadReport:
    """Re-evaluate every enrollment and host under ``policy``; unless ``dry_run``, swap and revoke."""
    old = vm.policy_version
    if not dry_run:
        vm.set_policy(policy)
    hosts = judge_hosts(vm, policy)
    vnfs = judge_vnfs(vm, policy)
    bad_hosts = {h.host: h for h in hosts if not h.trusted}
    targets: list[tuple[str, str | None, str]] = []
    revocations: list[dict[str, Any]] = []
    for h in bad_hosts.values():
        why = f"policy {str(policy.version)[:12]}: host no longer trusted: " + denial_summary(h.reasons)
        targets.append((h.host, None, why))
        revocations.append({"host": h.host, "vnf": None, "why": why, "serials": _live(vm, h.host, None)})
    for v in vnfs:
        if not v.allowed and v.host not in bad_hosts:
            why = f"policy {str(policy.version)[:12]}: VNF no longer admitted: " + denial_summary(v.reasons)
            targets.append((v.host, v.vnf, why))
            revocations.append({"host": v.host, "vnf": v.vnf, "why": why, "serials": _live(vm, v.host, v.vnf)})
    report = ReloadReport(dry_run, old, str(policy.version), hosts, vnfs, revocations)
    if not dry_run:
        report.revoked_serials = (
            vm.revoke_batch(targets, crl_reason="privilegeWithdrawn", actor=actor) if targets else []
        )
        with vm.storage.transaction() as tx:
            tx.audit.record(
                at=vm.now(),
                actor=actor,
                action="reload-policy",
                allowed=True,
                policy_version=str(policy.version),
                evidence={"old_policy_version": old, "revoked_serials": report.revoked_serials},
                reasons=[Reason("reload", r["why"]).to_json() for r in revocations],
            )
        if old == str(policy.version):
            log.info("policy %s reloaded: unchanged", old)
        else:
            # A change that revoked is worth an operator's attention; one that did not is routine.
            log.log(
                logging.WARNING if report.revoked_serials else logging.INFO,
                "policy %s replaced by %s; %d certificate(s) revoked",
                old,
                policy.version,
                len(report.revoked_serials),
            )
    return report


def _live(vm: VerificationManager, host: str, vnf: str | None) -> list[str]:
    return [e.serial for e in vm.storage.enrollments.live(host=host, vnf=vnf, at=vm.now())]


def _pinned_as(h: HostRecord) -> HostAttestationRecord:
    """The scratch copy of ``h``: not trusted until judged, the real record's PCK pinned, last
    contacted when the real host was (the grace period reads the same)."""
    return HostAttestationRecord(
        trusted=False, at=h.last_contact_at or datetime(1970, 1, 1, tzinfo=UTC), reasons=(),
        policy_version=None, platform_pck_sha256=h.platform_pck_sha256,
    )  # fmt: skip
