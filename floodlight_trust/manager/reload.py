"""``ftrust vm reload-policy``: judge every enrollment again under a new policy, then revoke.

- VNFs: the enclave claims and key each live certificate was issued for (stored with its
  enrollment) are judged again by the enrollment judge's admission checks
  (``judges.enrollment.judge_admission``, what ``enroll`` runs after the evidence checks): no enroll
  rule any more, a host policy that no longer fits, an enclave policy the claims no longer satisfy
  (e.g. its MRENCLAVE was removed), a certificate profile that now carries an admin or controller
  identity, a key the key mode cannot use, a name bound to another enclave: revocation.
- Hosts: the IMA list judged so far under the old policy is not trusted under the new one by
  inference. Each trusted host is challenged for fresh evidence, which the host judge
  (``judges.host.judge_host``) judges *in full* under the new policy; nothing is recorded, so a dry
  run changes nothing. An untrusted verdict means every VNF on the host is revoked.

Without ``dry_run`` the new policy is swapped in first (decisions from then on use it), every
revocation is made in ONE transaction and the CRL republished once. The next re-attestation round
appraises every host's whole IMA list again under the new policy version (its incremental state
belonged to the old one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from floodlight_trust.claims import EnclaveClaims, enclave_from_json
from floodlight_trust.errors import FtrustError
from floodlight_trust.judges.enrollment import Admission, judge_admission, spki_sha256
from floodlight_trust.manager.enrollment import ENCLAVE_KEY_FIELD
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.protocol import b64decode
from floodlight_trust.protocol.evidence import KeyMode
from floodlight_trust.reasons import Reason, denial_summary, denials
from floodlight_trust.storage.records import EnrollmentRecord, HostRecord
from policy_lang.compile import Policy

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


def judge_vnfs(vm: VerificationManager, policy: Policy) -> list[VnfJudgement]:
    """Every active enrollment judged again under ``policy`` with the enrollment judge's admission
    checks (``judges.enrollment.judge_admission``: enroll rule, host policy, platform, identity,
    enclave policy, certificate profile, key type), on the enclave claims and key it was issued for
    (no I/O beyond the state)."""
    at = vm.now()
    out = []
    hosts = {h.name: h for h in vm.storage.hosts.all()}
    for e in vm.storage.enrollments.enrollments(active_only=True):
        reasons: list[Reason] = []
        stored = vm.storage.enrollments.enclave_claims(e.serial)
        if stored is None:
            if policy.enroll_rule(e.vnf) is None:
                reasons.append(
                    Reason("policy.enroll", f"no enroll rule of policy {policy.version} admits VNF {e.vnf!r}")
                )
            else:
                reasons.append(
                    Reason("reload.claims", "no enclave claims stored with this enrollment: it cannot be re-judged")
                )
        else:
            try:
                admission = _admission(vm, e, stored, hosts.get(e.host))
            except FtrustError as err:
                reasons.append(Reason("reload.claims", err.message))
            else:
                judged = judge_admission(admission, policy, vm.settings.enrollments, at=at)
                reasons.extend(judged.reasons)  # notes too (simulated SGX allowed, ...)
        out.append(VnfJudgement(e.host, e.vnf, e.serial, not denials(reasons), reasons))
    return out


def stored_enclave(stored: Mapping[str, Any], where: str = "enclave") -> tuple[EnclaveClaims, bytes | None]:
    """The claims and the key an enrollment was issued for, from the document stored with it
    (enrollments made before the key was stored give None for it)."""
    key_text = stored.get(ENCLAVE_KEY_FIELD)
    spki = b64decode(key_text, what=f"{where}.{ENCLAVE_KEY_FIELD}") if isinstance(key_text, str) else None
    return enclave_from_json(stored, where), spki


def _admission(
    vm: VerificationManager, e: EnrollmentRecord, stored: Mapping[str, Any], host: HostRecord | None
) -> Admission:
    """What an enrollment was judged on when it was issued, with today's records of its host and name."""
    claims, spki = stored_enclave(stored, f"enrollment {e.serial}")
    return Admission(
        host=e.host,
        vnf=e.vnf,
        key_mode=KeyMode(e.key_mode),
        public_key=spki,
        claims=claims,
        host_record=host,
        registration=vm.storage.enrollments.registration(e.host, e.vnf),
        key_holder=vm.storage.enrollments.bound_name(spki_sha256(spki)) if spki is not None else None,
    )


def judge_hosts(vm: VerificationManager, policy: Policy) -> list[HostJudgement]:
    """Fresh evidence of every trusted host, judged in full under ``policy`` by the host judge
    (``HostAttestation.judge_again``): nothing is recorded, so a dry run changes nothing."""
    out = []
    for h in vm.storage.hosts.all():
        if h.status != "trusted":
            continue
        if not h.agent_url:
            out.append(HostJudgement(h.name, False, [Reason("reload.host", "no agent URL: cannot be re-judged")], 0))
            continue
        try:
            judged = vm.host_attestation.judge_again(h, policy)
        except FtrustError as e:
            # Unreachable now is the re-attestation loop's business (grace period), not the policy's.
            why = Reason("agent.unreachable", f"agent of {h.name} did not answer: {e.message}")
            out.append(HostJudgement(h.name, True, [why], 0))
            continue
        out.append(HostJudgement(h.name, judged.trusted, list(judged.reasons), judged.ima_entries))
    return out


def reload_policy(vm: VerificationManager, policy: Policy, *, dry_run: bool, actor: str) -> ReloadReport:
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
            vm.revocation.revoke_batch(targets, crl_reason="privilegeWithdrawn", actor=actor) if targets else []
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
