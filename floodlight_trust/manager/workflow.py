"""The Verification Manager's workflow: attest the host, attest the VNF, provision its credentials.

Steps (docs/protocol.md):

1. The VM issues a fresh nonce (``nonces.py``) for host evidence; the agent answers with a quote of
   the host's integrity enclave, REPORTDATA = SHA-256(nonce || SHA-256(IMA list)), and the list.
2. :meth:`VerificationManager.attest_host_evidence`: the host judge (``judges/host.py``) checks the
   quote (DCAP, same code for real and simulated roots), the binding, the integrity enclave's
   identity, and appraises the IMA list with the host policy (incrementally after the first round).
   The verdict and every reason are recorded.
3. Only on a trusted host: :meth:`enroll_evidence`: the enrollment judge (``judges/enrollment.py``)
   checks a VNF quote the same way, with REPORTDATA binding the nonce and the enclave's public key,
   from the SAME platform as the host quote, and the policy's admission of the enclave.
4. The CA signs a certificate for the enclave's key (default), or for a key the VM generates and
   seals to the enclave's key (``vm-generated``). Certificate, enrollment record and audit record
   are written in ONE transaction.

Every decision is an audit record with the evidence hashes, the policy version and every reason.
Revocations call ``revocation_listeners`` after commit, so the CRL is republished at once.

This module is the facade the service, re-attestation and reload call: registration, and each
verdict counted in the metrics. The steps act on the judges' verdicts: ``host_attestation.py``
(1-2), ``enrollment.py`` (3-4), ``revocation.py`` (``vm.revocation.revoke``); they answer in the
types of ``verdicts.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import Any

from floodlight_trust import metrics
from floodlight_trust.errors import FtrustError, InputError, NotFoundError
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.manager.enrollment import Enrollment
from floodlight_trust.manager.host_attestation import HostAttestation
from floodlight_trust.manager.revocation import Revocation
from floodlight_trust.manager.verdicts import EnrollmentResult, HostVerdict
from floodlight_trust.protocol.evidence import EnclaveEvidence, HostEvidence
from floodlight_trust.reasons import Reason, denials
from floodlight_trust.storage.records import HostRecord

log = logging.getLogger("floodlight_trust.manager")


class VerificationManager(ManagerContext):
    """The workflow over state, policy, trust anchors and the CA (constructed as a
    :class:`ManagerContext`). Thread-safe: the HTTP service calls it from many threads; SQLite
    transactions serialise the writes."""

    # The steps, made on first use; each keeps the context, so a swapped policy reaches them all.
    @cached_property
    def revocation(self) -> Revocation:
        return Revocation(self)

    @cached_property
    def host_attestation(self) -> HostAttestation:
        return HostAttestation(self, self.quotes, self.revocation)

    @cached_property
    def enrollment(self) -> Enrollment:
        return Enrollment(self, self.quotes, self.host_attestation)

    @property
    def revocation_listeners(self) -> list[Callable[[list[str]], None]]:
        """Called after each committed revocation with its serials: append to subscribe."""
        return self.revocation.listeners

    # -- step 1-2: host (host_attestation.py) ----------------------------------------------------
    def register_tpm(self, host: str, *, actor: str) -> dict[str, Any]:
        """Register ``host``'s TPM through its agent: EK trust, AK residency, AK pinned (tpm_attestation.py)."""
        from floodlight_trust.manager.tpm_attestation import register_tpm

        return register_tpm(self, self.tpm_settings, host, actor=actor)

    def issue_nonce(self, purpose: str, host: str, vnf: str | None = None) -> dict[str, str]:
        """A nonce for agent-initiated attestation: only for a registered host (else NotFoundError).
        Nothing is written (``manager/nonces.py``); a database that cannot record the answer's
        decision is StorageUnavailable (503) now rather than after the agent has quoted."""
        self.storage.check()  # (SQLite reads still see a database file deleted under them: checked here)
        # host and VNF registration read together, without building their records
        self.enrollment.require_known(host, vnf if purpose == "enclave" else None, unregistered_host=_no_nonce_for)
        return self.nonces.issue(purpose, host, vnf, at=self.now()).to_json()

    def register_vnf(
        self, host: str, vnf: str, *, actor: str, enroll_rule: str | None = None, mrenclave: str | None = None
    ) -> dict[str, Any]:
        """Register VNF ``vnf`` on ``host`` under an enroll rule of the policy in force (default: the
        rule that admits the name), optionally for one MRENCLAVE. Audited. The name binds to the
        enclave of its first enrollment."""
        self.storage.hosts.get(host)
        rule = self.policy.enroll_rule(vnf) if self.policy is not None else None
        if enroll_rule is not None and (rule is None or rule.name != enroll_rule):
            names = sorted(r.name for r in getattr(self.policy, "enrolls", ()))
            raise InputError(
                f"enroll rule {enroll_rule!r} does not admit VNF {vnf!r}"
                + (f" (the policy's rule for it is {rule.name!r})" if rule is not None else ""),
                hint="enroll rules: " + (", ".join(names) or "none"),
            )
        if rule is None:
            raise InputError(
                f"no enroll rule of policy {self.policy_version} admits VNF {vnf!r}",
                hint='add an `enroll NAME for "PATTERN" {...}` rule for it first',
            )
        if mrenclave is not None and (len(mrenclave) != 64 or any(c not in "0123456789abcdef" for c in mrenclave)):
            raise InputError(f"--mrenclave must be 64 lowercase hex digits, got {mrenclave[:80]!r}")
        at = self.now()
        with self.storage.transaction() as tx:
            tx.enrollments.register_vnf(
                host, vnf, enroll_rule=str(rule.name), by=actor, at=at, expected_mrenclave=mrenclave
            )
            tx.audit.record(
                at=at,
                actor=actor,
                action="register-vnf",
                allowed=True,
                host=host,
                vnf=vnf,
                policy_version=self.policy_version,
                evidence={"enroll_rule": rule.name, "mrenclave": mrenclave},
            )
        return {"host": host, "vnf": vnf, "enroll_rule": rule.name, "registered_by": actor, "mrenclave": mrenclave}

    def release_vnf(self, host: str, vnf: str, *, actor: str, reason: str, remove: bool = False) -> list[str]:
        """Free a VNF name from its enclave binding (``remove``: unregister it too): its live
        certificates are revoked in the same transaction, so two enclaves never hold the name at once.
        Audited. Returns the revoked serials."""
        if self.storage.enrollments.registration(host, vnf) is None:
            raise NotFoundError(f"VNF {vnf!r} is not registered on host {host!r}", code="vnf.unregistered")
        at = self.now()
        action = "remove-vnf" if remove else "release-vnf"
        with self.storage.transaction() as tx:
            serials = self.revocation.revoke_tx(
                tx, host=host, vnf=vnf, reason="superseded", why=f"{action}: {reason}", at=at, actor=actor
            )
            if remove:
                tx.enrollments.remove_vnf(host, vnf)
            else:
                tx.enrollments.release(host, vnf)
            tx.audit.record(
                at=at,
                actor=actor,
                action=action,
                allowed=True,
                host=host,
                vnf=vnf,
                policy_version=self.policy_version,
                evidence={"revoked_serials": serials},
                reasons=[Reason("registration", f"{action} by {actor}: {reason}").to_json()],
            )
        self.revocation.notify(serials)
        return serials

    # -- registration (admins) -------------------------------------------------------------------
    def remove_host(self, host: str, *, actor: str, reason: str) -> list[str]:
        """Unregister ``host``: every live certificate issued to it or on its platform is revoked
        and the removal audited, in one transaction. Returns the revoked serials."""
        self.storage.hosts.get(host)
        at = self.now()
        with self.storage.transaction() as tx:
            serials = self.revocation.revoke_tx(
                tx,
                host=host,
                vnf=None,
                reason="cessationOfOperation",
                why=f"host removed: {reason}",
                at=at,
                actor=actor,
            )
            tx.hosts.remove(host)
            tx.audit.record(
                at=at,
                actor=actor,
                action="remove-host",
                allowed=True,
                host=host,
                policy_version=self.policy_version,
                evidence={"revoked_serials": serials},
                reasons=[Reason("registration", f"host {host!r} removed by {actor}: {reason}").to_json()],
            )
        self.revocation.notify(serials)
        self.host_attestation.forget(host)
        return serials

    def request_repin(self, host: str, *, actor: str, reason: str) -> HostRecord:
        """Allow the next trusted quote of ``host`` to pin another platform (a PCK re-issued after a
        TCB recovery). Audited; the new platform must still belong to no other registered host."""
        record = self.storage.hosts.get(host)
        at = self.now()
        with self.storage.transaction() as tx:
            tx.hosts.request_repin(host, by=actor, at=at)
            tx.audit.record(
                at=at,
                actor=actor,
                action="repin-host",
                allowed=True,
                host=host,
                policy_version=self.policy_version,
                evidence={"pinned_platform": record.platform_key},
                reasons=[Reason("registration", f"re-pin of {host!r} requested by {actor}: {reason}").to_json()],
            )
        return self.storage.hosts.get(host)

    def attest_host_evidence(
        self, evidence: HostEvidence | Mapping[str, Any], *, actor: str, authoritative: bool = False
    ) -> HostVerdict:
        """Verify host evidence and record the verdict (see :meth:`HostAttestation.attest_host_evidence`)."""
        return _counted_host(
            self.host_attestation.attest_host_evidence(evidence, actor=actor, authoritative=authoritative)
        )

    def attest_host(self, host: str, *, actor: str) -> HostVerdict:
        """VM-initiated: challenge the host's registered agent and judge its evidence."""
        return _counted_host(self.host_attestation.attest_host(host, actor=actor))

    def reattest_host(self, host: str, *, actor: str = "reattest", renew: bool = False) -> HostVerdict:
        """One round of continuous re-attestation (issue 8 calls this on an interval).

        Incremental IMA appraisal from the stored state; an untrustworthy host, or one unreachable
        past the grace period, has every VNF certificate revoked in one transaction and the CRL
        republished (``revocation_listeners``). With ``renew``, VNFs with an active certificate on a
        trusted host are enrolled again (short-lived certificates renewed each round).
        """
        verdict = self.attest_host(host, actor=actor)
        if verdict.trusted and renew:
            for vnf in sorted({e.vnf for e in self.storage.enrollments.enrollments(host=host, active_only=True)}):
                try:
                    self.enroll(host, vnf, actor=actor)
                except FtrustError as e:
                    log.warning("renewal of %s on %s failed: %s", vnf, host, e)
        return verdict

    # -- step 3-4: VNF (enrollment.py) -----------------------------------------------------------
    def enroll_evidence(
        self,
        evidence: EnclaveEvidence | Mapping[str, Any],
        *,
        actor: str,
        key_mode: str | None = None,
        renew_before: timedelta | None = None,
    ) -> EnrollmentResult:
        """Verify a VNF enclave's evidence and, if allowed, issue or keep its certificate."""
        return _counted_enrollment(
            self.enrollment.enroll_evidence(evidence, actor=actor, key_mode=key_mode, renew_before=renew_before)
        )

    def enroll(
        self, host: str, vnf: str, *, actor: str, key_mode: str | None = None, renew_before: timedelta | None = None
    ) -> EnrollmentResult:
        """VM-initiated: attest the host if its trust is stale, attest the VNF, issue and install."""
        return _counted_enrollment(
            self.enrollment.enroll(host, vnf, actor=actor, key_mode=key_mode, renew_before=renew_before)
        )

def _no_nonce_for(host: str) -> NotFoundError:
    return NotFoundError(
        f"host {host!r} is not registered: no nonce is issued for it",
        code="host.unregistered",
        hint="an admin registers hosts with `ftrust vm hosts add NAME --agent URL`",
    )


def _counted_host(verdict: HostVerdict) -> HostVerdict:
    metrics.ATTESTATIONS.labels(kind="host", outcome="trusted" if verdict.trusted else "untrusted").inc()
    metrics.count_denials([r.rule for r in denials(verdict.reasons)])
    return verdict


def _counted_enrollment(result: EnrollmentResult) -> EnrollmentResult:
    metrics.ATTESTATIONS.labels(kind="enclave", outcome="trusted" if result.allowed else "untrusted").inc()
    metrics.ENROLLMENTS.labels(outcome="refused" if not result.allowed else "kept" if result.kept else "issued").inc()
    metrics.count_denials([r.rule for r in denials(result.reasons)])
    return result

