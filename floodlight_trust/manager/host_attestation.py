"""Host attestation: challenge a host, verify its integrity enclave's quote and appraise its IMA list.

Steps 1-2 of docs/protocol.md. The quote binds the nonce and the SHA-256 of the whole IMA list;
after the first trusted round only the tail of the list is transferred (the VM holds the prefix)
and appraised (the IMA state and the host policy's whole-list state carry over). A failed verdict
on evidence the VM fetched itself makes a trusted host untrusted and revokes its VNFs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from floodlight_trust.claims import ClaimSet, EnclaveClaims, TpmClaims
from floodlight_trust.errors import FtrustError, NotFoundError, UnauthenticatedEvidence, VerificationError
from floodlight_trust.evidence.ima.appraise import ListBytes
from floodlight_trust.evidence.tpm.quote import TpmCheck
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.manager.platform_checks import pinned_platform, platform_in_use, platform_key
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING, QuoteVerifier, platform_json
from floodlight_trust.manager.revocation import Revocation
from floodlight_trust.manager.verdicts import (
    NONCE_REPLAYED,
    NOTE,
    Denied,
    HostVerdict,
    Reason,
    decision_reasons,
    denial_summary,
    denials,
    error_reason,
)
from floodlight_trust.protocol import b64decode, validate
from floodlight_trust.protocol.binding import (
    check_report_data,
    host_report_data_for_digest,
    host_report_data_with_tpm,
    tpm_qualifying_data,
)
from floodlight_trust.storage.records import HostAttestationRecord, HostRecord
from policy_lang.evaluate import HostMeasuredState

log = logging.getLogger("floodlight_trust.manager")


class _TailMismatch(Exception):
    """Internal: a tail-only IMA transfer did not bind (the list no longer extends the prefix the VM
    holds); the caller asks for the whole list with a fresh nonce. Never recorded, never escapes."""

    def __init__(self, nonce: bytes):
        super().__init__("IMA tail does not extend the prefix held by the VM")
        self.nonce = nonce


def _persisted_ima_length(record: HostRecord | None) -> int | None:
    """The byte length the host's persisted IMA state covers, if it has one."""
    if record is None or not record.ima_state_json:
        return None
    try:
        n = json.loads(record.ima_state_json).get("byte_length")
    except (ValueError, AttributeError):
        return None
    return n if isinstance(n, int) else None


class HostAttestation:
    """Judge host evidence and record the verdict; keeps each host's IMA state between rounds."""

    def __init__(self, ctx: ManagerContext, quotes: QuoteVerifier, revocation: Revocation):
        self.ctx = ctx
        self.quotes = quotes
        self.revocation = revocation
        self.tpm_registry = ctx.storage.tpm  # hosts whose evidence must be anchored in their TPM
        # host -> (persisted JSON, ImaState in memory, the host policy's whole-list state)
        self._ima_states: dict[str, tuple[str, Any, HostMeasuredState | None]] = {}
        # Incremental transfer: host -> (the whole IMA list of its last trusted round, as the chunks
        # it arrived in, and the running SHA-256 over it). The next challenge asks only for what
        # follows; memory only, so a restarted VM asks for the whole list once.
        self._ima_transfer: dict[str, tuple[ListBytes, Any]] = {}

    def forget(self, host: str) -> None:
        """Drop what memory holds of a removed host (IMA state and transfer prefix)."""
        self._ima_states.pop(host, None)
        self._ima_transfer.pop(host, None)

    def ima_offset(self, host: str) -> int:
        """The byte offset the next challenge of ``host`` asks its IMA list from (0: the whole list)."""
        held = self._ima_transfer.get(host)
        return len(held[0]) if held else 0

    def _whole_ima_list(
        self, name: str, offset: int, sent: bytes, record: HostRecord | None = None
    ) -> tuple[ListBytes, Any]:
        """The whole list (the prefix the VM holds + the tail sent, never copied: the appraisal of
        the held state reads only the tail) and a SHA-256 object over it. A whole list sent again
        (after a VM restart) is hashed once: the same pass keeps the hash of the prefix the
        persisted IMA state covers, which the appraisal checks."""
        if offset == 0:
            whole = ListBytes((sent,))
            return whole, whole.sha256(snapshot_at=_persisted_ima_length(record))
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
        return prefix.append(sent), hasher

    def attest_host_evidence(
        self, evidence: Any, *, actor: str, authoritative: bool = False, _tail_retry: bool = False
    ) -> HostVerdict:
        """Verify host evidence and record the verdict.

        Only a registered host is judged: evidence for any other name is a NotFoundError and leaves
        no row. ``authoritative`` is True when the VM itself fetched the evidence from the host's
        registered agent (admin attest, re-attestation): only then does a failed verdict make a
        trusted host untrusted and revoke its VNFs. Evidence pushed by anyone else that proves
        nothing (nonce, quote or binding fails) is an UnauthenticatedEvidence error recording
        nothing; pushed evidence that verifies can only make a host trusted, so a stranger can
        neither grow the state nor get a host's VNFs revoked by sending garbage in its name.
        """
        at = self.ctx.now()
        validate("host_evidence", evidence)
        name = evidence["host"]
        record = self.ctx.storage.hosts.find(name)
        if record is None:
            raise NotFoundError(
                f"host {name!r} is not registered: its evidence is refused and nothing is recorded",
                code="host.unregistered",
                hint="an admin registers hosts with `ftrust vm hosts add NAME --agent URL`",
            )
        host_policy = self.ctx.host_policy(record)
        reasons: list[Reason] = []
        digest_info: dict[str, Any] = {"host_policy": host_policy}
        ima_state_json: str | None = None
        ima_entries = 0
        claims: EnclaveClaims | None = None
        list_sha: str | None = None
        list_hasher: Any = None
        ima_list = ListBytes((b"",))
        nonce_ok = False
        verified = False  # the nonce is fresh, the quote verifies and binds it and this IMA list
        nonce = b""
        tpm_ev: Any = None
        pin: Any = None
        repin = record.repin_requested_by is not None
        key: str | None = None
        try:
            quote = b64decode(evidence["quote"], what="host_evidence.quote")
            sent = b64decode(evidence["ima_list"], what="host_evidence.ima_list")
            offset = int(evidence.get("ima_offset", 0))
            digest_info |= {"quote_sha256": hashlib.sha256(quote).hexdigest(), "ima_source": evidence.get("ima_source")}
            ima_list, list_hasher = self._whole_ima_list(name, offset, sent, record)
            list_sha = list_hasher.hexdigest()
            digest_info |= {
                "ima_list_sha256": list_sha,
                "ima_list_bytes": len(ima_list),
                "ima_offset": offset,
                "ima_bytes_sent": len(sent),
            }
            nonce = bytes.fromhex(evidence["nonce"])
            try:
                self.ctx.nonces.check(nonce, purpose="host", host=name, at=at)
            except VerificationError as e:
                raise Denied(error_reason("protocol.nonce", e)) from None
            nonce_ok = True
            pin, tpm_ev, fresh_boot = self._tpm_evidence(name, record, evidence, digest_info)
            vq = self.quotes.verify(evidence["evidence_type"], quote, evidence["collateral"], at)
            claims = vq.claims
            digest_info |= {"mrenclave": claims.mrenclave, "platform": platform_json(claims)}
            try:
                expected = (
                    host_report_data_with_tpm(nonce, list_hasher.digest(), tpm_ev.attest_bytes)
                    if tpm_ev is not None
                    else host_report_data_for_digest(nonce, list_hasher.digest())
                )
                check_report_data(expected, claims.report_data, what="host quote")
            except VerificationError as e:
                if offset and _tail_retry:  # the list no longer extends the prefix: ask for all of it
                    raise _TailMismatch(nonce) from None
                raise Denied(error_reason("protocol.binding", e)) from None
            verified = True
            key = platform_key(claims)
            if repin:
                digest_info |= {"repin_requested_by": record.repin_requested_by, "repinned_from": record.platform_key}
            else:
                pinned = pinned_platform(record, claims, require_linkable_epid=self.ctx.require_linkable_epid)
                if pinned:
                    raise Denied(*pinned)
            reasons.extend(self._check_integrity_enclave(host_policy, claims, at))
            appraised: list[Any] = []
            ima_state_json, ima_entries, ima_reasons = self.appraise_ima(
                record, name, host_policy, ima_list, at, fresh=fresh_boot, out=appraised
            )
            reasons.extend(ima_reasons)
            tpm_claims: TpmClaims | None = None
            if pin is not None and tpm_ev is not None:
                from floodlight_trust.manager.tpm_attestation import judge_host_tpm

                tpm_result, tpm_reasons = judge_host_tpm(
                    pin, tpm_ev, tpm_qualifying_data(nonce), appraised[0] if appraised else None
                )
                reasons.extend(tpm_reasons)
                tpm_claims = TpmClaims(
                    anchored=tpm_result.ok,
                    pcrs={} if tpm_result.failed(TpmCheck.PCR_DIGEST) else {b: {p: v.hex() for p, v in vals.items()}
                                                                            for b, vals in tpm_ev.pcrs.items()},
                    # the first verified round after registration records the baseline (tpm_attestation.py)
                    registered_pcrs=pin.boot_pcrs if pin.boot_pcrs is not None else tpm_ev.boot_pcrs(),
                )  # fmt: skip
                digest_info["tpm"] = {"boot": tpm_result.round.change.value, "ima_bank": tpm_result.ima_bank,
                                      "attest_sha256": hashlib.sha256(tpm_ev.attest_bytes).hexdigest()}  # fmt: skip
            reasons.extend(self._check_host_tpm_policy(host_policy, tpm_claims))
        except Denied as d:
            reasons.extend(d.reasons)
        except FtrustError as e:
            reasons.append(error_reason("protocol.evidence", e))
        if not verified and not authoritative:
            self._refuse_unauthenticated(name, reasons, nonce if nonce_ok else None, at)
        simulated = bool(claims and claims.simulated)
        if simulated:
            digest_info["warning"] = SIMULATED_WARNING
        revoked: list[str] = []
        with self.ctx.storage.transaction() as tx:
            # The nonce is used up in the transaction that records the decision: atomic.
            if nonce_ok and not self.ctx.nonces.burn(tx, nonce, at=at):
                reasons.append(NONCE_REPLAYED)
                nonce_ok = False
            # One platform, one registered host: checked where the pin is written, so two hosts
            # presenting one machine at once cannot both pass.
            owner = tx.hosts.platform_owner(key, other_than=name) if (verified and key) else None
            if owner is not None and key is not None:
                reasons.append(platform_in_use(name, key, owner))
            trusted = not denials(reasons)
            audit_id = tx.audit.record(
                at=at,
                actor=actor,
                action="attest-host",
                allowed=trusted,
                host=name,
                policy_version=self.ctx.policy_version,
                simulated=simulated,
                evidence=digest_info,
                reasons=[r.to_json() for r in reasons],
            )
            change_state = trusted or (authoritative and nonce_ok)
            if change_state:
                tx.hosts.record_attestation(
                    name,
                    HostAttestationRecord(
                        trusted=trusted,
                        at=at,
                        reasons=tuple(r.to_json() for r in reasons),
                        policy_version=self.ctx.policy_version,
                        platform_pck_sha256=claims.platform.pck_certificate_sha256 if (claims and trusted) else None,
                        platform=platform_json(claims) if (claims and trusted) else None,
                        ima_state_json=ima_state_json,
                        ima_entries=ima_entries,
                        ima_list_sha256=list_sha if trusted else None,
                        simulated=simulated,
                        platform_key=key if trusted else None,
                        repin=repin and trusted,
                    ),
                )
            if trusted and tpm_ev is not None and pin is not None:
                tx.tpm.record_round(
                    name, clock=tpm_ev.attest.clock_info, firmware=tpm_ev.attest.firmware_version,
                    boot_pcrs=tpm_ev.boot_pcrs(),
                )  # fmt: skip
            if not trusted and authoritative and nonce_ok and record.status == "trusted":
                why = "host became untrustworthy: " + denial_summary(reasons)
                revoked = self.revocation.revoke_tx(
                    tx, host=name, vnf=None, reason="keyCompromise", why=why, at=at, actor=actor
                )
        # Only a verified quote that changed the recorded state moves the incremental IMA transfer.
        if trusted and list_hasher is not None:
            self._ima_transfer[name] = (ima_list, list_hasher)
        elif change_state:
            self._ima_transfer.pop(name, None)
        self.revocation.notify(revoked)
        return HostVerdict(
            name, trusted, reasons, self.ctx.policy_version, audit_id, simulated, at, ima_entries, revoked
        )

    def _check_host_tpm_policy(self, host_policy: str, claims: TpmClaims | None) -> list[Reason]:
        """The host policy's ``tpm`` and ``boot_pcrs`` settings, judged like its other rules."""
        evaluate = getattr(self.ctx.policy, "evaluate_host_tpm", None)
        if evaluate is None:
            return []
        return decision_reasons(evaluate(host_policy, claims))

    def _tpm_evidence(
        self, name: str, record: HostRecord | None, evidence: Any, info: dict[str, Any]
    ) -> tuple[Any, Any, bool]:
        """The host's pinned TPM (if registered), its parsed TPM quote, and whether it rebooted since
        the last verified round (then the IMA list is appraised from its start)."""
        from floodlight_trust.evidence.tpm.quote import compare_rounds
        from floodlight_trust.manager.tpm_attestation import HostTpmEvidence

        pin = self.tpm_registry.get(name) if record is not None else None
        tpm_ev = HostTpmEvidence.from_json(evidence["tpm"]) if evidence.get("tpm") else None
        if pin is not None and tpm_ev is None:
            raise Denied(
                Reason("host.tpm.missing", f"host {name!r} has a registered TPM, but its evidence carries no TPM quote")
            )
        if pin is None and tpm_ev is not None:
            info["tpm"] = {"checked": False, "why": "the host's TPM is not registered"}
            return None, tpm_ev, False
        fresh = bool(pin and tpm_ev and compare_rounds(pin.last_clock, tpm_ev.attest.clock_info).rebooted)
        return pin, tpm_ev, fresh

    def _refuse_unauthenticated(self, name: str, reasons: list[Reason], nonce: bytes | None, at: datetime) -> None:
        """Pushed evidence that proves nothing: spend its nonce (no retry with it), record nothing."""
        if nonce is not None:
            with self.ctx.storage.transaction(durable=False) as tx:
                self.ctx.nonces.burn(tx, nonce, at=at)
        denied = denials(reasons)
        code = denied[0].rule if denied else "protocol.evidence"
        raise UnauthenticatedEvidence(
            f"evidence for host {name!r} proves nothing (refused, not recorded): " + denial_summary(reasons),
            code=code,
            reasons=[r.to_json() for r in reasons],
            hint="ask for a fresh nonce and send the quote that binds it",
        )

    def _check_integrity_enclave(self, host_policy: str, claims: EnclaveClaims, at: datetime) -> list[Reason]:
        if self.ctx.policy is None:
            return [Reason("policy", "no policy is loaded: nothing is trusted")]
        enclave_policy = self.ctx.policy.host_integrity_enclave(host_policy)
        if enclave_policy is None:
            # Fail closed: without an identity check any enclave's quote (a debug one too) would vouch
            # for the IMA list. Only a setting named UNSAFE lets it through, noted on every verdict.
            unsafe = getattr(self.ctx.policy, "host_unsafe_any_integrity_enclave", lambda _: None)(host_policy)
            if unsafe is None:
                return [
                    Reason(
                        "host.integrity_enclave",
                        f"host policy {host_policy!r} names no integrity enclave policy: this quote's enclave "
                        f"(MRENCLAVE {claims.mrenclave[:16]}...) is not judged, so nothing it says counts "
                        "(`ftrust policy check` reports it)",
                    )
                ]
            return [
                Reason(
                    "host.integrity_enclave",
                    f"INSECURE: the integrity enclave (MRENCLAVE {claims.mrenclave[:16]}...) is not judged: "
                    "UNSAFE_any_integrity_enclave = true",
                    location=unsafe,
                    level=NOTE,
                )
            ]
        decision = self.ctx.policy.evaluate_enclave(enclave_policy, ClaimSet(verified_at=at, enclave=claims))
        return decision_reasons(decision, "integrity-enclave: ")  # notes too: kept with the verdict

    def appraise_ima(
        self,
        record: HostRecord | None,
        name: str,
        host_policy: str,
        ima_list: bytes | ListBytes,
        at: datetime,
        *,
        fresh: bool = False,
        out: list[Any] | None = None,
    ) -> tuple[str | None, int, list[Reason]]:
        """Appraise the whole IMA list of ``name`` with its host policy, incrementally from the state
        of its last trusted round under this policy version. Returns (state JSON to persist, entry
        count, every reason including notes); a changed prefix is an ``ima.prefix`` reason. ``fresh``
        (the TPM says the host rebooted) appraises the list from its start; ``out`` receives the
        appraisal (for the TPM's PCR 10 comparison)."""
        from floodlight_trust.evidence.ima import ImaPrefixChanged, ImaState, appraise_measurement_list

        previous = None
        whole_list: HostMeasuredState | None = None  # what the host policy saw of the list so far
        if (
            record is not None
            and not fresh
            and record.status == "trusted"
            and record.ima_state_json
            # Entries appraised under another policy version are judged again in full by this one.
            and record.policy_version == self.ctx.policy_version
        ):
            # The in-memory state of the last trusted round (it keeps the previous list, so the prefix
            # check is a memcmp and a changed entry is named) if it is the persisted one; else resume
            # from the persisted state (a VM restart): the prefix is then checked by its SHA-256.
            cached = self._ima_states.get(name)
            if cached is not None and cached[0] == record.ima_state_json:
                previous, whole_list = cached[1], cached[2]
            else:
                persisted = json.loads(record.ima_state_json)
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
        if out is not None:
            out.append(appraisal)
        reasons = []
        if not appraisal.ok:
            for f in appraisal.findings:
                reasons.append(
                    Reason(f"ima.{getattr(f.kind, 'value', f.kind)}", f.message, str(f.location) or None, f.to_json())
                )
        claims = ClaimSet(verified_at=at, ima=appraisal.claims, subject=name)
        decision, whole_list = self.ctx.policy.evaluate_host_round(host_policy, claims, whole_list)
        reasons.extend(decision_reasons(decision))  # notes too: kept with the verdict
        state = appraisal.state
        entries = int(appraisal.entry_count)
        persisted_state = state.to_json()
        if whole_list is not None:  # carried with the IMA state: 'require measured' across rounds
            persisted_state["host_policy_state"] = whole_list.to_json()
        state_json = json.dumps(persisted_state, sort_keys=True)
        if denials(reasons):
            self._ima_states.pop(name, None)
        else:  # persisted only if the round is trusted; a stale entry is ignored (compared above)
            self._ima_states[name] = (state_json, state, whole_list)
        return state_json, entries, reasons

    def attest_host(self, host: str, *, actor: str) -> HostVerdict:
        """VM-initiated: challenge the host's registered agent and judge its evidence."""
        record = self.ctx.storage.hosts.get(host)
        agent = self.ctx.agent(record)
        offset = self.ima_offset(host)
        nonce = self.ctx.nonces.issue("host", host, at=self.ctx.now())
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
            with self.ctx.storage.transaction() as tx:
                self.ctx.nonces.burn(tx, mismatch.nonce, at=self.ctx.now())
        nonce = self.ctx.nonces.issue("host", host, at=self.ctx.now())
        try:
            evidence = agent.host_evidence(nonce.value, 0)
        except FtrustError as e:
            return self._unreachable(record, e, actor=actor)
        return self.attest_host_evidence(evidence, actor=actor, authoritative=True)

    def judging_failed(self, host: str, error: BaseException, *, actor: str) -> HostVerdict:
        """A failure of any kind while judging ``host`` (a parser bug reached by its agent's data, a
        storage error...): recorded like an unreachable agent, so it counts toward the grace period
        and revokes the host's VNFs past it. The caller's round goes on with the next host."""
        record = self.ctx.storage.hosts.get(host)
        message = f"{type(error).__name__}: {str(error)[:200]}" if not isinstance(error, FtrustError) else error.message
        return self._unreachable(
            record, error, actor=actor, rule="host.judging_failed", what=f"could not be judged ({message})"
        )

    def _unreachable(
        self,
        record: HostRecord,
        error: BaseException,
        *,
        actor: str,
        rule: str = "agent.unreachable",
        what: str | None = None,
    ) -> HostVerdict:
        at = self.ctx.now()
        last = record.last_contact_at
        within_grace = last is not None and at - last <= self.ctx.grace
        detail = what or f"did not answer: {getattr(error, 'message', error)}"
        reason = Reason(
            rule,
            f"agent of {record.name} {detail}"
            + (" (within the grace period)" if within_grace else " (past the grace period)"),
        )
        revoked: list[str] = []
        with self.ctx.storage.transaction() as tx:
            audit_id = tx.audit.record(
                at=at,
                actor=actor,
                action="attest-host",
                allowed=False,
                host=record.name,
                policy_version=self.ctx.policy_version,
                evidence={"agent_url": record.agent_url},
                reasons=[reason.to_json()],
            )
            if not within_grace and record.status == "trusted":
                tx.hosts.mark_untrusted(record.name, [reason.to_json()])
                revoked = self.revocation.revoke_tx(
                    tx,
                    host=record.name,
                    vnf=None,
                    reason="cessationOfOperation",
                    why=reason.message,
                    at=at,
                    actor=actor,
                )
        self.revocation.notify(revoked)
        return HostVerdict(record.name, False, [reason], self.ctx.policy_version, audit_id, False, at, 0, revoked)
