"""Host attestation: challenge a host, verify its integrity enclave's quote and appraise its IMA list.

Steps 1-2 of docs/protocol.md. The quote binds the nonce and the SHA-256 of the whole IMA list;
after the first trusted round only the tail of the list is transferred (the VM holds the prefix, or
after a restart the SHA-256 state over it saved with the host's IMA state) and appraised (the IMA
state and the host policy's whole-list state carry over). A failed verdict on evidence the VM
fetched itself makes a trusted host untrusted and revokes its VNFs.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from floodlight_trust.errors import FtrustError, NotFoundError, UnauthenticatedEvidence
from floodlight_trust.evidence.ima.appraise import ImaState, ListBytes
from floodlight_trust.judges.host import (
    HeldList,
    HostCase,
    HostJudgement,
    ImaBaseline,
    ImaRound,
    appraise_host_ima,
    gate,
    host_policy_of,
    judge_host,
)
from floodlight_trust.judges.platform import platform_identity, platform_in_use
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING, QuoteVerifier
from floodlight_trust.manager.revocation import Revocation
from floodlight_trust.manager.verdicts import NONCE_REPLAYED, HostVerdict
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.protocol.evidence import EvidenceParseError, HostEvidence, host_evidence
from floodlight_trust.reasons import Reason, denial_summary, denials, reasons_json
from floodlight_trust.storage.records import HostAttestationRecord, HostRecord, NoncePurpose, NonceRecord
from policy_lang.evaluate import HostMeasuredState

if TYPE_CHECKING:
    from policy_lang.compile import Policy

log = logging.getLogger("floodlight_trust.manager")


class _NotRoutine(Exception):
    """Internal: a round committed without a flush turned out to deny; it is made durably instead."""


class _TailMismatch(Exception):
    """Internal: a tail-only IMA transfer did not bind (the list no longer extends the prefix the VM
    holds); the caller asks for the whole list with a fresh nonce. Never recorded, never escapes."""

    def __init__(self, nonce: bytes):
        super().__init__("IMA tail does not extend the prefix held by the VM")
        self.nonce = nonce


class HostAttestation:
    """Judge host evidence and record the verdict; keeps each host's IMA state between rounds."""

    def __init__(self, ctx: ManagerContext, quotes: QuoteVerifier, revocation: Revocation):
        self.ctx = ctx
        self.quotes = quotes
        self.revocation = revocation
        self.tpm_registry = ctx.storage.tpm  # hosts whose evidence must be anchored in their TPM
        # host -> (persisted JSON, ImaState in memory, the host policy's whole-list state)
        self._ima_states: dict[str, tuple[str, ImaState, HostMeasuredState | None]] = {}
        # Incremental transfer: host -> (the whole IMA list of its last trusted round, as the chunks
        # it arrived in, and the running SHA-256 over it). The next challenge asks only for what
        # follows. A restarted VM continues from the SHA-256 state persisted with the IMA state
        # (_held), or, without one, asks for the whole list once.
        self._ima_transfer: dict[str, HeldList] = {}

    def forget(self, host: str) -> None:
        """Drop what memory holds of a removed host (IMA state and transfer prefix)."""
        self._ima_states.pop(host, None)
        self._ima_transfer.pop(host, None)

    def ima_offset(self, host: str) -> int:
        """The byte offset the next challenge of ``host`` asks its IMA list from (0: the whole list)."""
        record = self.ctx.storage.hosts.find(host)
        held = self._held(host, record) if record is not None else None
        return len(held) if held else 0

    def _held(self, name: str, record: HostRecord) -> HeldList | None:
        """The prefix of ``name``'s IMA list the next round continues: the list of its last trusted
        round held in memory, or (a VM restart, or another replica judged the last round) the
        SHA-256 state saved with the persisted IMA state, whose bytes the VM no longer has: the
        quote's binding over that state and the tail then proves the list still starts with the
        appraised prefix. None: ask for the whole list (also when the appraisal would need the
        bytes of a prefix held only by its hash: no baseline to continue, e.g. a new policy)."""
        baseline = self._baseline(name, record)
        held = self._ima_transfer.get(name)
        if held is not None and baseline is not None and baseline.state.appraised_from(held.data):
            return held  # the usual case: the list and the state of this VM's last round
        resume = baseline.state.resume_point() if baseline is not None else None
        if resume is not None:
            return HeldList(*resume)
        return held if held is not None and held.data.complete else None

    def attest_host_evidence(
        self,
        evidence: HostEvidence | Mapping[str, Any],
        *,
        actor: str,
        authoritative: bool = False,
        _tail_retry: bool = False,
        _held: HeldList | None = None,
        _record: HostRecord | None = None,
    ) -> HostVerdict:
        """Judge host evidence (``judges.host.judge_host``) and act on the verdict: record it, and
        revoke the host's VNFs when it turns a trusted host untrusted.

        Only a registered host is judged: evidence for any other name is a NotFoundError and leaves
        no row. ``authoritative`` is True when the VM itself fetched the evidence from the host's
        registered agent (admin attest, re-attestation): only then does a failed verdict make a
        trusted host untrusted and revoke its VNFs. Evidence pushed by anyone else that proves
        nothing (nonce, quote or binding fails) is an UnauthenticatedEvidence error recording
        nothing; pushed evidence that verifies can only make a host trusted, so a stranger can
        neither grow the state nor get a host's VNFs revoked by sending garbage in its name.
        """
        at = self.ctx.now()
        try:
            parsed = host_evidence(evidence)
        except EvidenceParseError as e:
            record = self._registered(e.host)
            return self._act(record, None, [Reason.from_error("protocol.evidence", e)], None, actor, authoritative, at)
        # attest_host read the record it challenged (one read per round); pushed evidence names its host
        record = _record if _record is not None and _record.name == parsed.host else self._registered(parsed.host)
        case = HostCase(
            evidence=parsed,
            record=record,
            nonce=self.ctx.nonces.find(parsed.nonce, host=parsed.host),
            # the prefix the challenge asked from (attest_host), else the one held now (pushed evidence)
            held=_held if _held is not None else self._held(parsed.host, record),
            baseline=self._baseline(parsed.host, record),
            tpm_pin=self.tpm_registry.get(parsed.host),
            tail_retry=_tail_retry,
        )
        if gate(case, at=at):  # only then is the quote worth verifying (IAS or PCS may be asked)
            case = replace(case, quote=self.quotes.verify(parsed.evidence_type, parsed.quote, parsed.collateral, at))
        judgement = judge_host(case, self.ctx.policy, self.ctx.settings.hosts, at=at)
        if judgement.tail_mismatch:  # the list no longer extends the prefix: ask for all of it
            raise _TailMismatch(parsed.nonce)
        self._keep_ima_state(parsed.host, judgement.ima)
        fresh = parsed.nonce if judgement.nonce_fresh else None
        return self._act(record, judgement, list(judgement.reasons), fresh, actor, authoritative, at)

    def judge_again(self, record: HostRecord, policy: Policy) -> HostJudgement:
        """Challenge ``record``'s agent for its whole IMA list and judge it in full under ``policy``
        (``reload-policy``), recording nothing: the nonce is this call's own, never stored, so the
        evidence answers only it. FtrustError when the agent does not answer."""
        at = self.ctx.now()
        value = secrets.token_bytes(NONCE_BYTES)
        mine = NonceRecord(
            selector="", verifier=b"", purpose=NoncePurpose.HOST, host=record.name, vnf=None, issued_at=at,
            expires_at=at + self.ctx.nonces.ttl,
        )  # fmt: skip
        try:
            parsed = host_evidence(self.ctx.agent(record).host_evidence(value, 0))
        except EvidenceParseError as e:
            return HostJudgement.undecodable(record.name, host_policy_of(record, policy), e)
        answers = hmac.compare_digest(parsed.nonce, value)  # else: an unknown nonce, the judge says so
        case = HostCase(
            evidence=parsed, record=record, nonce=mine if answers else None, tpm_pin=self.tpm_registry.get(record.name)
        )
        if gate(case, at=at):
            case = replace(case, quote=self.quotes.verify(parsed.evidence_type, parsed.quote, parsed.collateral, at))
        return judge_host(case, policy, self.ctx.settings.hosts, at=at)

    def _registered(self, name: str) -> HostRecord:
        record = self.ctx.storage.hosts.find(name)
        if record is None:
            raise NotFoundError(
                f"host {name!r} is not registered: its evidence is refused and nothing is recorded",
                code="host.unregistered",
                hint="an admin registers hosts with `ftrust vm hosts add NAME --agent URL`",
            )
        return record

    def _act(
        self,
        record: HostRecord,
        j: HostJudgement | None,
        reasons: list[Reason],
        nonce: bytes | None,
        actor: str,
        authoritative: bool,
        at: datetime,
    ) -> HostVerdict:
        """Record the verdict (``j`` None: the evidence did not even decode), spend the nonce (a
        fresh one), update the host's state, revoke; or refuse unauthenticated pushed evidence."""
        name = record.name
        verified = j is not None and j.verified
        if not verified and not authoritative:
            self._refuse_unauthenticated(name, reasons, nonce, at)
        claims = j.claims if j is not None else None
        simulated = bool(claims and claims.simulated)
        info = dict(j.evidence_info) if j is not None else {"host_policy": self.ctx.host_policy(record)}
        if simulated:
            info["warning"] = SIMULATED_WARNING
        key = j.platform_key if j is not None else None
        # A routine round (trusted before and after, on its pinned platform, no TPM round to record)
        # only moves the host's IMA state and times forward: committed without waiting for the
        # flush to stable storage (docs/protocol.md, "Decisions and audit"). If the transaction
        # finds otherwise (a replayed nonce, a platform in use), it is undone and made durably.
        routine = (
            j is not None and j.verified and not denials(reasons) and record.status == "trusted"
            and not j.repin and key is not None and key == record.platform_key and j.tpm_evidence is None
        )  # fmt: skip
        try:
            return self._record(record, j, list(reasons), nonce, actor, authoritative, at, info, simulated, routine)
        except _NotRoutine:
            return self._record(record, j, list(reasons), nonce, actor, authoritative, at, info, simulated, False)

    def _record(
        self,
        record: HostRecord,
        j: HostJudgement | None,
        reasons: list[Reason],
        nonce: bytes | None,
        actor: str,
        authoritative: bool,
        at: datetime,
        info: dict[str, Any],
        simulated: bool,
        routine: bool,
    ) -> HostVerdict:
        name = record.name
        verified = j is not None and j.verified
        claims = j.claims if j is not None else None
        key = j.platform_key if j is not None else None
        ima = j.ima if j is not None else None
        revoked: list[str] = []
        with self.ctx.storage.transaction(durable=not routine) as tx:
            # The nonce is used up in the transaction that records the decision: atomic.
            if nonce is not None and not self.ctx.nonces.burn(tx, nonce, host=name, at=at):
                reasons.append(NONCE_REPLAYED)
                nonce = None
            # One platform, one registered host: checked where the pin is written, so two hosts
            # presenting one machine at once cannot both pass.
            owner = tx.hosts.platform_owner(key, other_than=name) if (verified and key) else None
            if owner is not None and key is not None:
                reasons.append(platform_in_use(name, key, owner))
            trusted = not denials(reasons)
            if routine and not trusted:
                raise _NotRoutine  # rolls this transaction back
            audit_id = tx.audit.record(
                at=at,
                actor=actor,
                action="attest-host",
                allowed=trusted,
                host=name,
                policy_version=self.ctx.policy_version,
                simulated=simulated,
                evidence=info,
                reasons=reasons_json(reasons),
            )
            change_state = trusted or (authoritative and nonce is not None)
            if change_state:
                tx.hosts.record_attestation(
                    name,
                    HostAttestationRecord(
                        trusted=trusted,
                        at=at,
                        reasons=tuple(reasons_json(reasons)),
                        policy_version=self.ctx.policy_version,
                        platform_pck_sha256=claims.platform.pck_certificate_sha256 if (claims and trusted) else None,
                        platform=platform_identity(claims) if (claims and trusted) else None,
                        ima_state_json=ima.state_json if ima is not None else None,
                        ima_entries=ima.entries if ima is not None else 0,
                        ima_list_sha256=j.list_sha256 if (j is not None and trusted) else None,
                        simulated=simulated,
                        platform_key=key if trusted else None,
                        repin=bool(j is not None and j.repin and trusted),
                    ),
                )
            if trusted and j is not None and j.tpm_evidence is not None:
                tpm = j.tpm_evidence
                tx.tpm.record_round(
                    name, clock=tpm.attest.clock_info, firmware=tpm.attest.firmware_version, boot_pcrs=tpm.boot_pcrs()
                )
            if not trusted and authoritative and nonce is not None and record.status == "trusted":
                why = "host became untrustworthy: " + denial_summary(reasons)
                revoked = self.revocation.revoke_tx(
                    tx, host=name, vnf=None, reason="keyCompromise", why=why, at=at, actor=actor
                )
        # Only a verified quote that changed the recorded state moves the incremental IMA transfer.
        if trusted and j is not None and j.whole_list is not None:
            self._ima_transfer[name] = j.whole_list
        elif change_state:
            self._ima_transfer.pop(name, None)
        self.revocation.notify(revoked)
        return HostVerdict(
            host=name,
            trusted=trusted,
            reasons=reasons,
            policy_version=self.ctx.policy_version,
            audit_id=audit_id,
            simulated=simulated,
            attested_at=at,
            ima_entries=ima.entries if ima is not None else 0,
            revoked_serials=revoked,
        )

    def _refuse_unauthenticated(self, name: str, reasons: list[Reason], nonce: bytes | None, at: datetime) -> NoReturn:
        """Pushed evidence that proves nothing: spend its nonce (no retry with it), record nothing."""
        if nonce is not None:
            with self.ctx.storage.transaction(durable=False) as tx:
                self.ctx.nonces.burn(tx, nonce, host=name, at=at)
        denied = denials(reasons)
        code = denied[0].rule if denied else "protocol.evidence"
        raise UnauthenticatedEvidence(
            f"evidence for host {name!r} proves nothing (refused, not recorded): " + denial_summary(reasons),
            code=code,
            reasons=reasons_json(reasons),
            hint="ask for a fresh nonce and send the quote that binds it",
        )

    def _baseline(self, name: str, record: HostRecord) -> ImaBaseline | None:
        """The IMA state the host's next round continues from: that of its last trusted round under
        this policy version (entries appraised under another are judged again in full), from memory
        if it is the persisted one (it keeps the previous list, so the prefix check is a memcmp and
        a changed entry is named), else from the persisted state (a VM restart: the prefix is then
        checked by its SHA-256). None: appraise the whole list."""
        if not (
            record.status == "trusted" and record.ima_state_json and record.policy_version == self.ctx.policy_version
        ):
            return None
        cached = self._ima_states.get(name)
        if cached is not None and cached[0] == record.ima_state_json:
            return ImaBaseline(cached[1], cached[2])
        persisted = json.loads(record.ima_state_json)
        if persisted.get("host_policy_state") is None:  # persisted without it: appraise in full once
            return None
        state = ImaState.from_json(persisted)
        whole_list = HostMeasuredState.from_json(persisted["host_policy_state"])
        # Kept, so that the challenge and the judgement of one round continue the same object (the
        # unheld prefix of a resumable state is recognised by identity: ListBytes.extends).
        self._ima_states[name] = (record.ima_state_json, state, whole_list)
        return ImaBaseline(state, whole_list)

    def _keep_ima_state(self, name: str, ima: ImaRound | None) -> None:
        """Keep an IMA state whose list and policy passed in memory (persisted only if the round is
        trusted; a stale entry is ignored: :meth:`_baseline` compares it with the persisted one)."""
        if ima is None:
            return
        if ima.passed:
            self._ima_states[name] = (ima.state_json, ima.state, ima.whole_list)
        else:
            self._ima_states.pop(name, None)

    def appraise_ima(
        self,
        record: HostRecord | None,
        name: str,
        host_policy: str,
        ima_list: bytes | ListBytes,
        at: datetime,
        *,
        fresh: bool = False,
    ) -> tuple[str | None, int, list[Reason]]:
        """Appraise the whole IMA list of ``name`` with its host policy, incrementally from the state
        of its last trusted round under this policy version (``judges.host.appraise_host_ima``, as
        a host attestation does). Returns (state JSON to persist, entry count, every reason
        including notes). ``fresh`` appraises the list from its start."""
        baseline = None if (fresh or record is None) else self._baseline(name, record)
        reasons, ima, _ = appraise_host_ima(self.ctx.policy, host_policy, name, ima_list, baseline, at)
        self._keep_ima_state(name, ima)
        return (ima.state_json if ima else None), (ima.entries if ima else 0), reasons

    def attest_host(self, host: str, *, actor: str) -> HostVerdict:
        """VM-initiated: challenge the host's registered agent and judge its evidence."""
        record = self.ctx.storage.hosts.get(host)
        agent = self.ctx.agent(record)
        held = self._held(host, record)
        offset = len(held) if held is not None else 0
        nonce = self.ctx.nonces.issue("host", host, at=self.ctx.now())
        try:
            evidence = host_evidence(agent.host_evidence(nonce.value, offset))
        except EvidenceParseError as e:
            return self._undecodable(record, e, actor=actor)
        except FtrustError as e:
            return self._unreachable(record, e, actor=actor)
        try:
            return self.attest_host_evidence(
                evidence, actor=actor, authoritative=True, _tail_retry=offset > 0, _held=held, _record=record
            )
        except _TailMismatch as mismatch:
            # The whole-list hash did not bind: the list no longer extends the prefix the VM holds
            # (changed or truncated) or the tail was altered. Spend that nonce and judge the WHOLE
            # list, whose appraisal names what changed.
            log.warning("IMA list of %s no longer extends the prefix held by the VM: asking for the whole list", host)
            self._ima_transfer.pop(host, None)
            with self.ctx.storage.transaction() as tx:
                self.ctx.nonces.burn(tx, mismatch.nonce, host=host, at=self.ctx.now())
        nonce = self.ctx.nonces.issue("host", host, at=self.ctx.now())
        try:
            evidence = host_evidence(agent.host_evidence(nonce.value, 0))
        except EvidenceParseError as e:
            return self._undecodable(record, e, actor=actor)
        except FtrustError as e:
            return self._unreachable(record, e, actor=actor)
        return self.attest_host_evidence(evidence, actor=actor, authoritative=True)

    def _undecodable(self, record: HostRecord, error: EvidenceParseError, *, actor: str) -> HostVerdict:
        """The registered agent answered evidence whose quote or list does not decode: a verdict."""
        reasons = [Reason.from_error("protocol.evidence", error)]
        return self._act(record, None, reasons, None, actor, True, self.ctx.now())

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
        return HostVerdict(
            host=record.name,
            trusted=False,
            reasons=[reason],
            policy_version=self.ctx.policy_version,
            audit_id=audit_id,
            simulated=False,
            attested_at=at,
            revoked_serials=revoked,
        )
