"""The Verification Manager's workflow: attest the host, attest the VNF, provision its credentials.

Steps (docs/protocol.md):

1. The VM issues a fresh nonce (``nonces.py``) for host evidence; the agent answers with a quote of
   the host's integrity enclave, REPORTDATA = SHA-256(nonce || SHA-256(IMA list)), and the list.
2. :meth:`VerificationManager.attest_host_evidence` verifies the quote (DCAP, same code for real and
   simulated roots), the binding, the integrity enclave's identity, and appraises the IMA list with
   the host policy (incrementally after the first round). The verdict and every reason are recorded.
3. Only on a trusted host: :meth:`enroll_evidence` verifies a VNF quote the same way, with REPORTDATA
   binding the nonce and the enclave's public key, from the SAME platform as the host quote.
4. The CA signs a certificate for the enclave's key (default), or for a key the VM generates and
   seals to the enclave's key (``vm-generated``). Certificate, enrollment record and audit record
   are written in ONE transaction.

Every decision is an audit record with the evidence hashes, the policy version and every reason.
Revocations call ``revocation_listeners`` after commit, so the CRL is republished at once.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust import clock
from floodlight_trust.claims import ClaimSet, EnclaveClaims, enclave_to_json
from floodlight_trust.errors import FtrustError, InputError, ServiceError, VerificationError
from floodlight_trust.manager.audit import AuditLog
from floodlight_trust.manager.nonces import NonceStore
from floodlight_trust.manager.platform_checks import pinned_platform, same_platform
from floodlight_trust.manager.quotes import SIMULATED_WARNING, QuoteVerifier, platform_json
from floodlight_trust.manager.state import HostRecord, ManagerState
from floodlight_trust.manager.verdicts import (
    NONCE_REPLAYED,
    NOTE,
    Denied,
    EnrollmentResult,
    HostVerdict,
    Reason,
    decision_reasons,
    denial_summary,
    denials,
    error_reason,
)
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.protocol import b64decode, validate
from floodlight_trust.protocol.binding import check_report_data, host_report_data_for_digest, key_report_data
from floodlight_trust.protocol.keywrap import wrap_private_key
from floodlight_trust.storage.database import Database
from policy_lang.evaluate import HostMeasuredState

log = logging.getLogger("floodlight_trust.manager")

KEY_MODES = ("enclave", "vm-generated")
ADMIN_URI_PREFIX = "urn:ftrust:admin:"


class _TailMismatch(Exception):
    """Internal: a tail-only IMA transfer did not bind (the list no longer extends the prefix the VM
    holds); the caller asks for the whole list with a fresh nonce. Never recorded, never escapes."""

    def __init__(self, nonce: bytes):
        super().__init__("IMA tail does not extend the prefix held by the VM")
        self.nonce = nonce


class AgentConnection(Protocol):
    """What the VM needs from an agent (``manager.client.AgentClient`` over HTTP)."""

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> dict[str, Any]: ...

    def enclave_evidence(self, vnf: str, nonce: bytes) -> dict[str, Any]: ...

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]: ...


def spki_sha256(spki: bytes) -> str:
    return hashlib.sha256(spki).hexdigest()


def serial_text(serial: int) -> str:
    from floodlight_trust.pki.records import serial_hex

    return str(serial_hex(serial))


class VerificationManager:
    """The workflow over state, policy, trust anchors and the CA. Thread-safe: the HTTP service
    calls it from many threads; SQLite transactions serialise the writes."""

    def __init__(
        self,
        *,
        db: Database,
        ca: Any,
        policy: Any,
        anchors: Sequence[Any],
        nonce_ttl_seconds: int = 60,
        host_trust_seconds: int = 120,
        grace_period_seconds: int = 90,
        key_mode: str = "enclave",
        connect: Callable[[HostRecord], AgentConnection] | None = None,
        now: Callable[[], datetime] = clock.now,
        ias: Any = None,
        collateral: Any = None,
        require_linkable_epid: bool = False,
        renew_before_seconds: int | None = None,
    ):
        if key_mode not in KEY_MODES:
            raise InputError(f"unknown key mode {key_mode!r}", hint="vm.key_mode is 'enclave' or 'vm-generated'")
        self.db = db
        self.state = ManagerState(db)
        self.audit = AuditLog(db)
        self.nonces = NonceStore(db, ttl_seconds=nonce_ttl_seconds)
        self.ca = ca
        self.policy = policy
        self.anchors = list(anchors)
        self.host_trust = timedelta(seconds=host_trust_seconds)
        self.grace = timedelta(seconds=grace_period_seconds)
        self.key_mode = key_mode
        self.connect = connect
        self.now = now
        self.quotes = QuoteVerifier(self.anchors, ias, collateral)
        self.require_linkable_epid = require_linkable_epid
        # Re-attestation renews a VNF's certificate only when less than this is left of it
        # (None: every round). The enclave evidence is checked every round either way.
        self.renew_before = timedelta(seconds=renew_before_seconds) if renew_before_seconds is not None else None
        self.revocation_listeners: list[Callable[[list[str]], None]] = []
        self._policy_lock = threading.Lock()
        # host -> (persisted JSON, ImaState in memory, the host policy's whole-list state)
        self._ima_states: dict[str, tuple[str, Any, HostMeasuredState | None]] = {}
        # Incremental transfer: host -> (the whole IMA list of its last trusted round, the running
        # SHA-256 over it). The next challenge asks only for what follows; memory only, so a
        # restarted VM asks for the whole list once.
        self._ima_transfer: dict[str, tuple[bytes, Any]] = {}
        self.simulated = self.quotes.simulated
        if self.simulated:
            log.warning("%s: trust_simulated_sgx = true; NEVER use this in production", SIMULATED_WARNING)

    @property
    def policy_version(self) -> str | None:
        return str(self.policy.version) if self.policy is not None else None

    def set_policy(self, policy: Any) -> None:
        """Swap the policy; later decisions use it (``manager.reload`` re-evaluates and revokes first).

        The next round of each host appraises its whole IMA list again under the new policy version.
        """
        with self._policy_lock:
            self.policy = policy

    # -- step 1-2: host ------------------------------------------------------------------------
    def issue_nonce(self, purpose: str, host: str, vnf: str | None = None) -> dict[str, str]:
        return self.nonces.issue(purpose, host, vnf, at=self.now()).to_json()

    def _host_policy(self, host: HostRecord | None) -> str:
        if host is not None and host.host_policy:
            return host.host_policy
        found = getattr(self.policy, "host_policies", None) if self.policy is not None else None
        names = list((found() if callable(found) else found) or [])
        if len(names) == 1:
            return str(names[0])
        return "default"

    def ima_offset(self, host: str) -> int:
        """The byte offset the next challenge of ``host`` asks its IMA list from (0: the whole list)."""
        held = self._ima_transfer.get(host)
        return len(held[0]) if held else 0

    def _whole_ima_list(self, name: str, offset: int, sent: bytes) -> tuple[bytes, Any]:
        """The whole list (the prefix the VM holds + the tail sent) and a SHA-256 object over it."""
        if offset == 0:
            return sent, hashlib.sha256(sent)
        held = self._ima_transfer.get(name)
        if held is None or len(held[0]) != offset:
            raise Denied(
                Reason(
                    "protocol.ima_offset",
                    f"the agent sent the IMA list from byte {offset}, but the VM holds no such prefix of host "
                    f"{name!r}'s list: the whole list must be sent",
                )
            )
        prefix, hasher = held
        hasher = hasher.copy()  # the running hash over the prefix, extended by the tail only
        hasher.update(sent)
        return prefix + sent, hasher

    def attest_host_evidence(
        self, evidence: Any, *, actor: str, authoritative: bool = False, _tail_retry: bool = False
    ) -> HostVerdict:
        """Verify host evidence and record the verdict.

        ``authoritative`` is True when the VM itself fetched the evidence from the host's registered
        agent (admin attest, re-attestation): only then does a failed verdict make a trusted host
        untrusted and revoke its VNFs. Evidence pushed by anyone else can only make a host trusted,
        so a stranger cannot get a host's VNFs revoked by sending garbage in its name.
        """
        at = self.now()
        validate("host_evidence", evidence)
        name = evidence["host"]
        record = self.state.find_host(name)
        host_policy = self._host_policy(record)
        reasons: list[Reason] = []
        digest_info: dict[str, Any] = {"host_policy": host_policy}
        ima_state_json: str | None = None
        ima_entries = 0
        claims: EnclaveClaims | None = None
        list_sha: str | None = None
        list_hasher: Any = None
        ima_list = b""
        nonce_ok = False
        nonce = b""
        try:
            quote = b64decode(evidence["quote"], what="host_evidence.quote")
            sent = b64decode(evidence["ima_list"], what="host_evidence.ima_list")
            offset = int(evidence.get("ima_offset", 0))
            digest_info |= {"quote_sha256": hashlib.sha256(quote).hexdigest(), "ima_source": evidence.get("ima_source")}
            ima_list, list_hasher = self._whole_ima_list(name, offset, sent)
            list_sha = list_hasher.hexdigest()
            digest_info |= {
                "ima_list_sha256": list_sha,
                "ima_list_bytes": len(ima_list),
                "ima_offset": offset,
                "ima_bytes_sent": len(sent),
            }
            nonce = bytes.fromhex(evidence["nonce"])
            try:
                self.nonces.check(nonce, purpose="host", host=name, at=at)
            except VerificationError as e:
                raise Denied(error_reason("protocol.nonce", e)) from None
            nonce_ok = True
            vq = self.quotes.verify(evidence["evidence_type"], quote, evidence["collateral"], at)
            claims = vq.claims
            digest_info |= {"mrenclave": claims.mrenclave, "platform": platform_json(claims)}
            try:
                check_report_data(
                    host_report_data_for_digest(nonce, list_hasher.digest()), claims.report_data, what="host quote"
                )
            except VerificationError as e:
                if offset and _tail_retry:  # the list no longer extends the prefix: ask for all of it
                    raise _TailMismatch(nonce) from None
                raise Denied(error_reason("protocol.binding", e)) from None
            if record is not None:
                pinned = pinned_platform(record, claims, require_linkable_epid=self.require_linkable_epid)
                if pinned:
                    raise Denied(*pinned)
            reasons.extend(self._check_integrity_enclave(host_policy, claims, at))
            ima_state_json, ima_entries, ima_reasons = self._appraise_ima(record, name, host_policy, ima_list, at)
            reasons.extend(ima_reasons)
        except Denied as d:
            reasons.extend(d.reasons)
        except FtrustError as e:
            reasons.append(error_reason("protocol.evidence", e))
        simulated = bool(claims and claims.simulated)
        if simulated:
            digest_info["warning"] = SIMULATED_WARNING
        revoked: list[str] = []
        with self.db.transaction() as tx:
            # The nonce is used up in the transaction that records the decision: atomic.
            if nonce_ok and not self.nonces.burn(tx, nonce, at=at):
                reasons.append(NONCE_REPLAYED)
                nonce_ok = False
            trusted = not denials(reasons)
            audit_id = self.audit.record(
                tx,
                at=at,
                actor=actor,
                action="attest-host",
                allowed=trusted,
                host=name,
                policy_version=self.policy_version,
                simulated=simulated,
                evidence=digest_info,
                reasons=[r.to_json() for r in reasons],
            )
            change_state = trusted or (authoritative and nonce_ok) or record is None
            if change_state:
                self.state.record_host_attestation(
                    tx,
                    name,
                    trusted=trusted,
                    at=at,
                    reasons=[r.to_json() for r in reasons],
                    policy_version=self.policy_version,
                    platform_pck_sha256=claims.platform.pck_certificate_sha256 if (claims and trusted) else None,
                    platform_json=platform_json(claims) if (claims and trusted) else None,
                    ima_state_json=ima_state_json,
                    ima_entries=ima_entries,
                    ima_list_sha256=list_sha if trusted else None,
                    simulated=simulated,
                )
            if not trusted and authoritative and nonce_ok and record is not None and record.status == "trusted":
                why = "host became untrustworthy: " + denial_summary(reasons)
                revoked = self._revoke_tx(tx, host=name, vnf=None, reason="keyCompromise", why=why, at=at, actor=actor)
        if trusted and list_hasher is not None:
            self._ima_transfer[name] = (ima_list, list_hasher)
        else:
            self._ima_transfer.pop(name, None)
        self._notify(revoked)
        return HostVerdict(name, trusted, reasons, self.policy_version, audit_id, simulated, at, ima_entries, revoked)

    def _check_integrity_enclave(self, host_policy: str, claims: EnclaveClaims, at: datetime) -> list[Reason]:
        if self.policy is None:
            return [Reason("policy", "no policy is loaded: nothing is trusted")]
        enclave_policy = self.policy.host_integrity_enclave(host_policy)
        if enclave_policy is None:
            return []
        decision = self.policy.evaluate_enclave(enclave_policy, ClaimSet(verified_at=at, enclave=claims))
        return decision_reasons(decision, "integrity-enclave: ")  # notes too: kept with the verdict

    def _appraise_ima(
        self, record: HostRecord | None, name: str, host_policy: str, ima_list: bytes, at: datetime
    ) -> tuple[str | None, int, list[Reason]]:
        from floodlight_trust.evidence.ima import ImaPrefixChanged, ImaState, appraise_measurement_list

        previous = None
        whole_list: HostMeasuredState | None = None  # what the host policy saw of the list so far
        if (
            record is not None
            and record.status == "trusted"
            and record.ima_state_json
            # Entries appraised under another policy version are judged again in full by this one.
            and record.policy_version == self.policy_version
        ):
            # The in-memory state of the last trusted round (it keeps the previous list, so the prefix
            # check is a memcmp and a changed entry is named) if it is the persisted one; else resume
            # from the persisted state (a VM restart): the prefix is then checked by its SHA-256.
            cached = self._ima_states.get(name)
            if cached is not None and cached[0] == record.ima_state_json:
                previous, whole_list = cached[1], cached[2]
            else:
                persisted = _loads(record.ima_state_json)
                previous = ImaState.from_json(persisted)
                if persisted.get("host_policy_state") is not None:
                    whole_list = HostMeasuredState.from_json(persisted["host_policy_state"])
                else:  # persisted without the host policy's whole-list state: appraise in full once
                    previous = None
        try:
            appraisal = appraise_measurement_list(ima_list, state=previous, source=f"{name}:ima")
        except ImaPrefixChanged as e:
            return None, 0, [error_reason("ima.prefix", e)]
        except FtrustError as e:
            return None, 0, [error_reason("ima.list", e)]
        reasons = []
        if not appraisal.ok:
            for f in appraisal.findings:
                reasons.append(
                    Reason(f"ima.{getattr(f.kind, 'value', f.kind)}", f.message, str(f.location) or None, f.to_json())
                )
        claims = ClaimSet(verified_at=at, ima=appraisal.claims, subject=name)
        decision, whole_list = self.policy.evaluate_host_round(host_policy, claims, whole_list)
        reasons.extend(decision_reasons(decision))  # notes too: kept with the verdict
        state = appraisal.state
        entries = int(appraisal.entry_count)
        persisted_state = state.to_json()
        if whole_list is not None:  # carried with the IMA state: 'require measured' across rounds
            persisted_state["host_policy_state"] = whole_list.to_json()
        state_json = _dumps(persisted_state)
        if denials(reasons):
            self._ima_states.pop(name, None)
        else:  # persisted only if the round is trusted; a stale entry is ignored (compared above)
            self._ima_states[name] = (state_json, state, whole_list)
        return state_json, entries, reasons

    def attest_host(self, host: str, *, actor: str) -> HostVerdict:
        """VM-initiated: challenge the host's registered agent and judge its evidence."""
        record = self.state.host(host)
        agent = self._agent(record)
        offset = self.ima_offset(host)
        nonce = self.nonces.issue("host", host, at=self.now())
        try:
            evidence = agent.host_evidence(nonce.value, offset)
        except FtrustError as e:
            return self._unreachable(record, e, actor=actor)
        try:
            return self.attest_host_evidence(evidence, actor=actor, authoritative=True, _tail_retry=offset > 0)
        except _TailMismatch as mismatch:
            # The whole-list hash did not bind: the list no longer extends the prefix the VM holds
            # (changed or truncated) or the tail was altered. Spend that nonce and judge the WHOLE
            # list, whose appraisal names what changed.
            log.warning("IMA list of %s no longer extends the prefix held by the VM: asking for the whole list", host)
            self._ima_transfer.pop(host, None)
            with self.db.transaction() as tx:
                self.nonces.burn(tx, mismatch.nonce, at=self.now())
        nonce = self.nonces.issue("host", host, at=self.now())
        try:
            evidence = agent.host_evidence(nonce.value, 0)
        except FtrustError as e:
            return self._unreachable(record, e, actor=actor)
        return self.attest_host_evidence(evidence, actor=actor, authoritative=True)

    def reattest_host(self, host: str, *, actor: str = "reattest", renew: bool = False) -> HostVerdict:
        """One round of continuous re-attestation (issue 8 calls this on an interval).

        Incremental IMA appraisal from the stored state; an untrustworthy host, or one unreachable
        past the grace period, has every VNF certificate revoked in one transaction and the CRL
        republished (``revocation_listeners``). With ``renew``, VNFs with an active certificate on a
        trusted host are enrolled again (short-lived certificates renewed each round).
        """
        verdict = self.attest_host(host, actor=actor)
        if verdict.trusted and renew:
            for vnf in sorted({e.vnf for e in self.state.enrollments(host=host, active_only=True)}):
                try:
                    self.enroll(host, vnf, actor=actor)
                except FtrustError as e:
                    log.warning("renewal of %s on %s failed: %s", vnf, host, e)
        return verdict

    def _unreachable(self, record: HostRecord, error: FtrustError, *, actor: str) -> HostVerdict:
        at = self.now()
        last = record.last_contact_at
        within_grace = last is not None and at - clock.parse_time(last) <= self.grace
        reason = Reason(
            "agent.unreachable",
            f"agent of {record.name} did not answer: {error.message}"
            + (" (within the grace period)" if within_grace else " (past the grace period)"),
        )
        revoked: list[str] = []
        with self.db.transaction() as tx:
            audit_id = self.audit.record(
                tx,
                at=at,
                actor=actor,
                action="attest-host",
                allowed=False,
                host=record.name,
                policy_version=self.policy_version,
                evidence={"agent_url": record.agent_url},
                reasons=[reason.to_json()],
            )
            if not within_grace and record.status == "trusted":
                tx.execute(
                    "UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?",
                    (_dumps([reason.to_json()]), record.name),
                )
                revoked = self._revoke_tx(
                    tx,
                    host=record.name,
                    vnf=None,
                    reason="cessationOfOperation",
                    why=reason.message,
                    at=at,
                    actor=actor,
                )
        self._notify(revoked)
        return HostVerdict(record.name, False, [reason], self.policy_version, audit_id, False, at, 0, revoked)

    # -- step 3-4: VNF ---------------------------------------------------------------------------
    def enroll_evidence(
        self,
        evidence: Any,
        *,
        actor: str,
        key_mode: str | None = None,
        renew_before: timedelta | None = None,
    ) -> EnrollmentResult:
        """Verify a VNF enclave's evidence and, if allowed, issue its certificate (one transaction).

        With ``renew_before`` (re-attestation), an allowed VNF whose active certificate is for the
        same enclave key, MRENCLAVE and policy version and has more than ``renew_before`` left keeps
        it: the decision is recorded, nothing is issued (``EnrollmentResult.kept``).
        """
        at = self.now()
        validate("enclave_evidence", evidence)
        host, vnf = evidence["host"], evidence["vnf"]
        mode = key_mode or evidence.get("key_mode") or self.key_mode
        if mode not in KEY_MODES:
            raise InputError(f"unknown key mode {mode!r}")
        info: dict[str, Any] = {"key_mode": mode}
        claims: EnclaveClaims | None = None
        spki = b""
        nonce: bytes | None = None
        try:
            quote = b64decode(evidence["quote"], what="enclave_evidence.quote")
            spki = b64decode(evidence["public_key"], what="enclave_evidence.public_key")
            info |= {"quote_sha256": hashlib.sha256(quote).hexdigest(), "public_key_sha256": spki_sha256(spki)}
            fresh = bytes.fromhex(evidence["nonce"])
            try:
                self.nonces.check(fresh, purpose="enclave", host=host, vnf=vnf, at=at)
            except VerificationError as e:
                raise Denied(error_reason("protocol.nonce", e)) from None
            nonce = fresh
            record = self.state.find_host(host)
            self._require_trusted_host(record, host, at)
            assert record is not None
            rule = self.policy.enroll_rule(vnf) if self.policy is not None else None
            if rule is None:
                raise Denied(
                    Reason("policy.enroll", f"no enroll rule of policy {self.policy_version} admits VNF {vnf!r}")
                )
            info |= {"enclave_policy": rule.enclave_policy, "host_policy": rule.host_policy}
            host_policy = self._host_policy(record)
            if rule.host_policy and rule.host_policy != host_policy:
                raise Denied(
                    Reason(
                        "policy.enroll",
                        f"VNF {vnf!r} may only run on hosts trusted under host policy {rule.host_policy!r}; "
                        f"host {host!r} is judged by {host_policy!r}",
                    )
                )
            vq = self.quotes.verify(evidence["evidence_type"], quote, evidence["collateral"], at)
            claims = vq.claims
            info |= {"mrenclave": claims.mrenclave, "mrsigner": claims.mrsigner, "platform": platform_json(claims)}
            reasons = same_platform(record, claims, require_linkable_epid=self.require_linkable_epid)
            try:
                check_report_data(key_report_data(fresh, spki), claims.report_data, what="VNF quote")
            except VerificationError as e:
                reasons.append(error_reason("protocol.binding", e))
            decision = self.policy.evaluate_enclave(
                rule.enclave_policy, ClaimSet(verified_at=at, enclave=claims, subject=vnf)
            )
            reasons.extend(decision_reasons(decision))  # notes too: kept with the decision
            profile = rule.profile.render(vnf=vnf, host=host)
            if any(u.startswith(ADMIN_URI_PREFIX) for u in profile.san_uris):
                reasons.append(
                    Reason(
                        "policy.profile", f"a VNF certificate may not carry an admin identity ({ADMIN_URI_PREFIX}...)"
                    )
                )
            enclave_key = _load_spki(spki)
            if mode == "vm-generated" and not (
                isinstance(enclave_key, ec.EllipticCurvePublicKey) and isinstance(enclave_key.curve, ec.SECP256R1)
            ):
                reasons.append(Reason("protocol.key", "vm-generated mode needs the enclave's bound key to be EC P-256"))
            if denials(reasons):
                raise Denied(*reasons)
            current = self._current_certificate(host, vnf, mode, spki, claims, at, renew_before)
            if current is not None:
                return self._keep(host, vnf, mode, current, claims, info, at, actor, fresh, reasons)
            return self._issue(host, vnf, mode, profile, enclave_key, spki, claims, info, at, actor, fresh, reasons)
        except Denied as d:
            return self._deny(host, vnf, mode, d.reasons, claims, spki, info, at, actor, nonce)
        except FtrustError as e:
            reasons = [error_reason("protocol.evidence", e)]
            return self._deny(host, vnf, mode, reasons, claims, spki, info, at, actor, nonce)

    def _current_certificate(
        self,
        host: str,
        vnf: str,
        mode: str,
        spki: bytes,
        claims: EnclaveClaims,
        at: datetime,
        renew_before: timedelta | None,
    ) -> Any:
        """The active enrollment a re-attested VNF may keep, or None (then a certificate is issued)."""
        if renew_before is None or mode != "enclave":  # vm-generated: a new key pair each time
            return None
        for e in self.state.enrollments(host=host, vnf=vnf, active_only=True):
            if (
                e.status == "active"
                and e.key_mode == "enclave"
                and e.public_key_sha256 == spki_sha256(spki)
                and e.mrenclave == claims.mrenclave
                and e.policy_version == self.policy_version
                and clock.parse_time(e.not_after) - at > renew_before
            ):
                return e
        return None

    def _keep(
        self,
        host: str,
        vnf: str,
        mode: str,
        current: Any,
        claims: EnclaveClaims,
        info: dict[str, Any],
        at: datetime,
        actor: str,
        nonce: bytes,
        notes: Sequence[Reason],
    ) -> EnrollmentResult:
        if claims.simulated:
            info["warning"] = SIMULATED_WARNING
        evidence = info | {"serial": current.serial, "certificate_kept": True, "not_after": current.not_after}
        policy_version = self.policy_version

        def record(tx: sqlite3.Connection) -> int:
            if not self.nonces.burn(tx, nonce, at=at):
                raise Denied(NONCE_REPLAYED)
            audit_id = self.audit.record(
                tx,
                at=at,
                actor=actor,
                action="reattest-vnf",
                allowed=True,
                host=host,
                vnf=vnf,
                policy_version=policy_version,
                simulated=claims.simulated,
                evidence=evidence,
                reasons=[r.to_json() for r in notes],
            )
            self.state.record_vnf(
                tx,
                host,
                vnf,
                status="enrolled",
                at=at,
                mrenclave=claims.mrenclave,
                public_key_sha256=current.public_key_sha256,
                reasons=[],
            )
            return audit_id

        audit_id = self.db.write(record)
        return EnrollmentResult(
            host,
            vnf,
            True,
            list(notes),
            policy_version,
            audit_id,
            claims.simulated,
            mode,
            current.serial,
            clock.parse_time(current.not_after),
            kept=True,
        )

    def _require_trusted_host(self, record: HostRecord | None, host: str, at: datetime) -> None:
        if record is None or record.status != "trusted" or not record.last_trusted_at:
            why = "; ".join(r.get("message", "") for r in (record.reasons if record else []) if r.get("level") != NOTE)[
                :300
            ]
            raise Denied(
                Reason(
                    "host.trust",
                    f"host {host!r} is not trusted"
                    + (f" ({record.status}{': ' + why if why else ''})" if record else " (never attested)"),
                )
            )
        age = at - clock.parse_time(record.last_trusted_at)
        if age > self.host_trust:
            raise Denied(
                Reason(
                    "host.trust",
                    f"host {host!r} was last attested {int(age.total_seconds())} s ago, more than "
                    f"{int(self.host_trust.total_seconds())} s: attest it again first",
                )
            )

    def _issue(
        self,
        host: str,
        vnf: str,
        mode: str,
        profile: Any,
        enclave_key: Any,
        spki: bytes,
        claims: EnclaveClaims,
        info: dict[str, Any],
        at: datetime,
        actor: str,
        nonce: bytes,
        notes: Sequence[Reason] = (),
    ) -> EnrollmentResult:
        wrapped = None
        subject_key = enclave_key
        if mode == "vm-generated":
            private = generate_private_key(profile.key_type)
            subject_key = private.public_key()
            der = private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            wrapped = wrap_private_key(der, spki, context=f"vnf:{vnf}".encode()).to_json()
        subject_spki = subject_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if claims.simulated:
            info["warning"] = SIMULATED_WARNING
        # Signing is CPU work: it happens before the write transaction, which only records. The
        # certificate leaves this process only after that transaction (certificate, enrollment,
        # audit, nonce) has committed; if it does not commit, the signed bytes are dropped.
        cert: x509.Certificate = self.ca.sign(subject_key, profile, at=at)
        der = cert.public_bytes(serialization.Encoding.DER)
        serial = serial_text(cert.serial_number)
        cert_sha = hashlib.sha256(der).hexdigest()
        evidence = info | {"serial": serial, "certificate_sha256": cert_sha}
        policy_version = self.policy_version

        def record(tx: sqlite3.Connection) -> int:
            if not self.nonces.burn(tx, nonce, at=at):  # rolls back this enrollment: nothing issued
                raise Denied(NONCE_REPLAYED)
            audit_id = self.audit.record(
                tx,
                at=at,
                actor=actor,
                action="enroll",
                allowed=True,
                host=host,
                vnf=vnf,
                policy_version=policy_version,
                simulated=claims.simulated,
                evidence=evidence,
                reasons=[r.to_json() for r in notes],
            )
            self.ca.records.record_issued(cert, at=at, tx=tx)
            self.state.record_enrollment(
                tx,
                host=host,
                vnf=vnf,
                serial=serial,
                certificate_sha256=cert_sha,
                public_key_sha256=spki_sha256(subject_spki),
                key_mode=mode,
                mrenclave=claims.mrenclave,
                policy_version=policy_version,
                audit_id=audit_id,
                issued_at=at,
                not_after=cert.not_valid_after_utc,
                enclave_claims=enclave_to_json(claims),
            )
            self.state.record_vnf(
                tx,
                host,
                vnf,
                status="enrolled",
                at=at,
                mrenclave=claims.mrenclave,
                public_key_sha256=spki_sha256(spki),
                reasons=[],
            )
            return audit_id

        # Group commit: enrollments arriving together share one durable COMMIT; this returns only
        # after it (Database.write).
        audit_id = self.db.write(record)
        chain = [cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), self.ca.certificate_pem.decode("ascii")]
        return EnrollmentResult(
            host,
            vnf,
            True,
            list(notes),
            self.policy_version,
            audit_id,
            claims.simulated,
            mode,
            serial,
            cert.not_valid_after_utc,
            chain,
            wrapped,
        )

    def _deny(
        self,
        host: str,
        vnf: str,
        mode: str,
        reasons: list[Reason],
        claims: EnclaveClaims | None,
        spki: bytes,
        info: dict[str, Any],
        at: datetime,
        actor: str,
        nonce: bytes | None = None,
    ) -> EnrollmentResult:
        simulated = bool(claims and claims.simulated)
        known_host = self.state.find_host(host) is not None
        policy_version = self.policy_version

        def record(tx: sqlite3.Connection) -> int:
            if nonce is not None:
                self.nonces.burn(tx, nonce, at=at)  # a nonce presented once is spent, allowed or not
            audit_id = self.audit.record(
                tx,
                at=at,
                actor=actor,
                action="enroll",
                allowed=False,
                host=host,
                vnf=vnf,
                policy_version=policy_version,
                simulated=simulated,
                evidence=info,
                reasons=[r.to_json() for r in reasons],
            )
            if known_host:
                self.state.record_vnf(
                    tx,
                    host,
                    vnf,
                    status="denied",
                    at=at,
                    mrenclave=claims.mrenclave if claims else None,
                    public_key_sha256=spki_sha256(spki) if spki else None,
                    reasons=[r.to_json() for r in reasons],
                )
            return audit_id

        audit_id = self.db.write(record)
        return EnrollmentResult(host, vnf, False, reasons, policy_version, audit_id, simulated, mode)

    def enroll(
        self, host: str, vnf: str, *, actor: str, key_mode: str | None = None, renew_before: timedelta | None = None
    ) -> EnrollmentResult:
        """VM-initiated: attest the host if its trust is stale, attest the VNF, issue and install.

        ``renew_before``: see :meth:`enroll_evidence` (re-attestation keeps a certificate with enough
        validity left; nothing is installed then)."""
        record = self.state.host(host)
        if (
            record.status != "trusted"
            or not record.last_trusted_at
            or (self.now() - clock.parse_time(record.last_trusted_at) > self.host_trust / 2)
        ):
            verdict = self.attest_host(host, actor=actor)
            if not verdict.trusted:
                at = self.now()
                reasons = [Reason("host.trust", f"host {host!r} is not trusted"), *verdict.reasons]
                return self._deny(
                    host,
                    vnf,
                    key_mode or self.key_mode,
                    reasons,
                    None,
                    b"",
                    {"host_audit_id": verdict.audit_id},
                    at,
                    actor,
                )
            record = self.state.host(host)
        agent = self._agent(record)
        nonce = self.nonces.issue("enclave", host, vnf, at=self.now())
        evidence = agent.enclave_evidence(vnf, nonce.value)
        result = self.enroll_evidence(evidence, actor=actor, key_mode=key_mode, renew_before=renew_before)
        if result.allowed and not result.kept:
            ack = agent.install_credentials(vnf, result.credentials_message())
            leaf = x509.load_pem_x509_certificate(result.certificate_chain[0].encode())
            want = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
            if ack.get("certificate_sha256") != want:
                raise ServiceError(f"agent of {host} acknowledged another certificate than the one issued")
        return result

    def _agent(self, record: HostRecord) -> AgentConnection:
        if self.connect is None or not record.agent_url:
            raise InputError(
                f"host {record.name!r} has no agent URL", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return self.connect(record)

    # -- revocation ------------------------------------------------------------------------------
    def _revoke_tx(
        self,
        tx: sqlite3.Connection,
        *,
        host: str | None,
        vnf: str | None,
        reason: str,
        why: str,
        at: datetime,
        actor: str,
    ) -> list[str]:
        from floodlight_trust.pki.records import parse_serial

        serials = []
        for e in self.state.live_enrollments_tx(tx, host=host, vnf=vnf, at=at):
            self.ca.revoke(parse_serial(e.serial), reason, at=at, tx=tx)
            self.state.mark_revoked(tx, e.serial, at=at, reason=why)
            self.state.record_vnf(
                tx,
                e.host,
                e.vnf,
                status="revoked",
                at=at,
                mrenclave=None,
                public_key_sha256=None,
                reasons=[Reason("revocation", why).to_json()],
            )
            serials.append(e.serial)
        self.audit.record(
            tx,
            at=at,
            actor=actor,
            action="revoke",
            allowed=True,
            host=host,
            vnf=vnf,
            policy_version=self.policy_version,
            evidence={"serials": serials, "crl_reason": reason},
            reasons=[Reason("revocation", why).to_json()],
        )
        return serials

    def revoke(self, *, host: str | None = None, vnf: str | None = None, reason: str, actor: str) -> list[str]:
        """Revoke every active certificate of ``vnf`` (on ``host`` if given) or of every VNF on ``host``.

        Revoking a host also marks it untrusted until it is attested again. One transaction; the
        CRL is republished after commit. Returns the revoked serials.
        """
        if host is None and vnf is None:
            raise InputError("say which VNF or host to revoke")
        at = self.now()
        if host is not None:
            self.state.host(host)
        with self.db.transaction() as tx:
            serials = self._revoke_tx(
                tx,
                host=host,
                vnf=vnf,
                reason="cessationOfOperation" if vnf is None else "superseded",
                why=reason,
                at=at,
                actor=actor,
            )
            if host is not None and vnf is None:
                tx.execute(
                    "UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?",
                    (_dumps([Reason("revocation", f"revoked by {actor}: {reason}").to_json()]), host),
                )
        self._notify(serials)
        return serials

    def revoke_batch(self, targets: Sequence[tuple[str, str | None, str]], *, crl_reason: str, actor: str) -> list[str]:
        """Revoke several ``(host, vnf or None, why)`` targets in ONE transaction, then republish once.

        A target without a VNF revokes every VNF of the host and marks the host untrusted with ``why``.
        Used by re-attestation rounds and ``reload-policy``. Returns the revoked serials.
        """
        at = self.now()
        serials: list[str] = []
        with self.db.transaction() as tx:
            for host, vnf, why in targets:
                serials += self._revoke_tx(tx, host=host, vnf=vnf, reason=crl_reason, why=why, at=at, actor=actor)
                if vnf is None:
                    tx.execute(
                        "UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?",
                        (_dumps([Reason("revocation", why).to_json()]), host),
                    )
        self._notify(serials)
        return serials

    def _notify(self, serials: list[str]) -> None:
        if not serials:
            return
        for listener in self.revocation_listeners:
            try:
                listener(serials)
            except FtrustError as e:  # a failed republish must not undo a committed revocation
                log.error("revocation listener failed: %s", e)


def _load_spki(spki: bytes) -> Any:
    try:
        return serialization.load_der_public_key(spki)
    except ValueError:
        raise Denied(Reason("protocol.key", "the enclave public key is not a SubjectPublicKeyInfo DER")) from None


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _loads(text: str) -> Any:
    import json

    return json.loads(text)


# The public names of the workflow, wherever they are defined (``from ...workflow import X``).
__all__ = [
    "ADMIN_URI_PREFIX",
    "KEY_MODES",
    "SIMULATED_WARNING",
    "AgentConnection",
    "EnrollmentResult",
    "HostVerdict",
    "Reason",
    "VerificationManager",
    "decision_reasons",
    "denial_summary",
    "denials",
]
