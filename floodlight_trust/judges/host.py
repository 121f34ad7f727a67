"""Judge a host: is this evidence a fresh, authentic answer of the registered host, and is what
it measured trustworthy under its host policy?

:func:`judge_host` is pure: the host's evidence, its record, the nonce's record, the IMA list prefix
and appraisal state the VM holds from the host's last trusted round, its pinned TPM, the outcome of
the quote's verification, the policy and the time in; a frozen :class:`HostJudgement` out, with
every reason and what the manager must keep (the next IMA state, the whole list). Stages:

1. protocol: the IMA offset names a prefix the VM holds, the nonce is fresh, a registered TPM
   sent its quote. Only then does the manager verify the quote (IAS or PCS may be asked).
2. authenticity: the quote verified and binds the nonce and the whole list (and the TPM quote);
   the host is on its pinned platform.
3. trust (only for authentic evidence): the integrity enclave's identity, the IMA list with the
   host policy (incrementally from the held state), the TPM quote, the policy's TPM rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from floodlight_trust.claims import ClaimSet, EnclaveClaims, TpmClaims
from floodlight_trust.errors import FtrustError, VerificationError
from floodlight_trust.evidence.ima.appraise import (
    ImaAppraisal,
    ImaPrefixChanged,
    ImaPrefixNotHeld,
    ImaState,
    ListBytes,
    appraise_measurement_list,
)
from floodlight_trust.evidence.ima.sha256state import Sha256State
from floodlight_trust.evidence.tpm.keys import TpmKey, public_key_of
from floodlight_trust.evidence.tpm.quote import QuoteVerification, TpmCheck, compare_rounds, verify_quote
from floodlight_trust.evidence.tpm.structures import parse_public, parse_signature
from floodlight_trust.judges.platform import pinned_platform, platform_identity, platform_key
from floodlight_trust.judges.protocol import Checks, check_nonce, check_quote
from floodlight_trust.protocol.binding import (
    check_report_data,
    host_report_data_for_digest,
    host_report_data_with_tpm,
    tpm_qualifying_data,
)
from floodlight_trust.protocol.evidence import HostEvidence, HostTpmEvidence, Unparsed
from floodlight_trust.reasons import Reason, ReasonLevel, denials
from policy_lang.evaluate import HostMeasuredState

if TYPE_CHECKING:
    from floodlight_trust.storage.records import HostRecord, NonceRecord, TpmPin
    from policy_lang.compile import Policy

DEFAULT_HOST_POLICY = "default"
PREFIX_NOT_HELD = "protocol.ima_offset"  # the tail's prefix is needed, and only its hash is held


def host_policy_of(record: HostRecord | None, policy: Policy | None) -> str:
    """The host policy that judges ``record``: its own, else the policy's only one, else ``default``
    (enrollment, re-attestation and reload all ask this)."""
    if record is not None and record.host_policy:
        return record.host_policy
    names = policy.host_policies if policy is not None else []
    return str(names[0]) if len(names) == 1 else DEFAULT_HOST_POLICY


@dataclass(frozen=True, slots=True)
class HeldList:
    """The whole IMA list of a host's last trusted round as the VM holds it (the chunks it arrived
    in) and the running SHA-256 over it: the next challenge asks only for what follows. After a VM
    restart the list's prefix is unheld (``data.complete`` False): the VM has only the SHA-256
    state saved with the host's appraisal state (``ImaState.resume_point``)."""

    data: ListBytes
    sha256: Sha256State  # copied before it is extended

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ImaBaseline:
    """Where the host's last trusted round under this policy version stopped: the IMA appraisal
    state and what the host policy saw of the whole list."""

    state: ImaState
    whole_list: HostMeasuredState | None


@dataclass(frozen=True, slots=True)
class ImaRound:
    """The IMA part of a verdict: the state to keep (JSON to persist, and in memory) and the count."""

    state_json: str
    entries: int
    state: ImaState
    whole_list: HostMeasuredState | None
    passed: bool  # the list and the host policy found nothing to deny


@dataclass(frozen=True, slots=True)
class HostCase:
    """What :func:`judge_host` judges: the evidence and the records it needs, as values."""

    evidence: HostEvidence
    record: HostRecord
    nonce: NonceRecord | None  # the VM's record of the evidence's nonce (None: never issued)
    held: HeldList | None = None  # the prefix held from the last trusted round
    baseline: ImaBaseline | None = None  # its appraisal state (None: appraise the whole list)
    tpm_pin: TpmPin | None = None  # the host's registered TPM
    quote: EnclaveClaims | Reason | None = None  # the shell's quote verification (None: not run)
    tail_retry: bool = False  # a tail that does not bind is retried with the whole list


@dataclass(frozen=True, slots=True)
class HostSettings:
    """The operator's settings a host verdict depends on."""

    require_linkable_epid: bool = False


@dataclass(frozen=True, slots=True)
class HostJudgement:
    """The verdict on one host's evidence, with every reason (notes too)."""

    host: str
    host_policy: str
    reasons: tuple[Reason, ...]
    checks: tuple[str, ...]  # the checks that ran, in order
    nonce_fresh: bool  # the nonce was fresh: it is spent with this verdict
    gate_passed: bool  # stage 1 passed: the quote is worth verifying
    verified: bool  # nonce fresh, the quote verifies and binds this nonce and this list
    claims: EnclaveClaims | None
    platform_key: str | None
    evidence_info: Mapping[str, Any]  # digests and facts for the audit record
    ima: ImaRound | None = None
    whole_list: HeldList | None = None  # the list this round vouched for (kept when trusted)
    tpm_evidence: HostTpmEvidence | None = None  # recorded as the TPM's last round when trusted
    tail_mismatch: bool = False  # the tail does not bind: ask for the whole list
    repin: bool = False
    list_sha256: str | None = None

    @property
    def trusted(self) -> bool:
        return not denials(self.reasons)

    @classmethod
    def undecodable(cls, host: str, host_policy: str, error: FtrustError) -> HostJudgement:
        """The verdict on evidence whose quote or list does not even decode (nothing else is judged)."""
        return cls(
            host=host,
            host_policy=host_policy,
            reasons=(Reason.from_error("protocol.evidence", error),),
            checks=("protocol.evidence",),
            nonce_fresh=False,
            gate_passed=False,
            verified=False,
            claims=None,
            platform_key=None,
            evidence_info={"host_policy": host_policy},
        )

    @property
    def simulated(self) -> bool:
        return bool(self.claims and self.claims.simulated)

    @property
    def ima_entries(self) -> int:
        return self.ima.entries if self.ima is not None else 0


@dataclass
class _Round:
    """Facts established by earlier checks of one judgement, for the later ones."""

    info: dict[str, Any] = field(default_factory=dict)
    whole: HeldList | None = None
    tpm: HostTpmEvidence | None = None
    fresh_boot: bool = False
    appraisal: ImaAppraisal | None = None
    tpm_claims: TpmClaims | None = None
    tail_mismatch: bool = False
    ima: ImaRound | None = None


# -- stage 1: protocol ---------------------------------------------------------------------------
def check_ima_offset(e: HostEvidence, held: HeldList | None) -> list[Reason]:
    """The list is sent whole, or from the byte offset of the prefix the VM holds."""
    if e.ima_offset and (held is None or len(held) != e.ima_offset):
        return [
            Reason(
                "protocol.ima_offset",
                f"the agent sent the IMA list from byte {e.ima_offset}, but the VM holds no such prefix of host "
                f"{e.host!r}'s list: the whole list must be sent",
            )
        ]
    return []


def check_tpm_presence(e: HostEvidence, pin: TpmPin | None, r: _Round) -> list[Reason]:
    """A host with a registered TPM sends a TPM quote, and it parses; whether the TPM says the host
    rebooted since its last verified round (then the IMA list is appraised from its start)."""
    if isinstance(e.tpm, Unparsed):
        return [Reason.from_error("protocol.evidence", e.tpm.error)]
    if pin is not None and e.tpm is None:
        return [
            Reason("host.tpm.missing", f"host {e.host!r} has a registered TPM, but its evidence carries no TPM quote")
        ]
    r.tpm = e.tpm
    if pin is None and e.tpm is not None:
        r.info["tpm"] = {"checked": False, "why": "the host's TPM is not registered"}
    elif pin is not None and e.tpm is not None:
        r.fresh_boot = compare_rounds(pin.last_clock, e.tpm.attest.clock_info).rebooted
    return []


def _protocol(case: HostCase, c: Checks, r: _Round, at: datetime) -> bool:
    """Stage 1; True when the nonce is fresh."""
    e = case.evidence
    c.run("protocol.ima_offset", lambda: check_ima_offset(e, case.held))
    fresh = c.run(
        "protocol.nonce", lambda: check_nonce(case.nonce, e.nonce, purpose="host", host=e.host, vnf=None, at=at)
    )
    c.run("host.tpm.presence", lambda: check_tpm_presence(e, case.tpm_pin, r))
    return fresh


def gate(case: HostCase, *, at: datetime) -> bool:
    """Stage 1 alone: is the quote of this evidence worth verifying (the offset, the nonce, a
    registered TPM's quote)? The manager asks before it verifies (IAS or PCS may be called)."""
    c = Checks()
    _protocol(case, c, _Round(), at)
    return c.passed


# -- stage 2: authenticity -----------------------------------------------------------------------
def persisted_ima_length(record: HostRecord | None) -> int | None:
    """The byte length the host's persisted IMA state covers, if it has one."""
    if record is None or not record.ima_state_json:
        return None
    try:
        n = json.loads(record.ima_state_json).get("byte_length")
    except (ValueError, AttributeError):
        return None
    return n if isinstance(n, int) else None


def whole_ima_list(e: HostEvidence, held: HeldList | None, record: HostRecord | None = None) -> HeldList:
    """The whole list (the held chunks + the tail sent, never copied: the appraisal of the held
    state reads only the tail) and its SHA-256 (the held running hash, extended by the tail). A
    whole list sent again (after a VM restart) is hashed once: the same pass keeps the hash of the
    prefix the persisted IMA state covers, which the appraisal checks."""
    if e.ima_offset == 0 or held is None:
        whole = ListBytes((e.ima_list,))
        return HeldList(whole, whole.sha256(snapshot_at=persisted_ima_length(record)))
    hasher = held.sha256.copy()
    hasher.update(e.ima_list)
    whole = held.data.append(e.ima_list)
    whole.keep_sha256(hasher)  # the appraisal of the tail continues this hash, not a second pass
    return HeldList(whole, hasher)


def check_binding(e: HostEvidence, claims: EnclaveClaims, r: _Round, *, tail_retry: bool) -> list[Reason]:
    """REPORTDATA binds the nonce and the SHA-256 of the whole list (and of the TPM quote sent)."""
    assert r.whole is not None
    digest = r.whole.sha256.digest()
    expected = (
        host_report_data_with_tpm(e.nonce, digest, r.tpm.attest_bytes)
        if r.tpm is not None
        else host_report_data_for_digest(e.nonce, digest)
    )
    try:
        check_report_data(expected, claims.report_data, what="host quote")
    except VerificationError as err:
        if e.ima_offset and tail_retry:  # the list no longer extends the prefix: ask for all of it
            r.tail_mismatch = True
        return [Reason.from_error("protocol.binding", err)]
    return []


# -- stage 3: trust ------------------------------------------------------------------------------
def check_integrity_enclave(
    policy: Policy | None, host_policy: str, claims: EnclaveClaims, at: datetime
) -> list[Reason]:
    """The quoting enclave is the integrity enclave the host policy names (fail closed without one,
    unless ``UNSAFE_any_integrity_enclave``, noted on every verdict)."""
    if policy is None:
        return [Reason("policy", "no policy is loaded: nothing is trusted")]
    enclave_policy = policy.host_integrity_enclave(host_policy)
    if enclave_policy is None:
        # Without an identity check any enclave's quote (a debug one too) would vouch for the list.
        unsafe = policy.host_unsafe_any_integrity_enclave(host_policy)
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
            Reason.note(
                "host.integrity_enclave",
                f"INSECURE: the integrity enclave (MRENCLAVE {claims.mrenclave[:16]}...) is not judged: "
                "UNSAFE_any_integrity_enclave = true",
                location=unsafe,
            )
        ]
    decision = policy.evaluate_enclave(enclave_policy, ClaimSet(verified_at=at, enclave=claims))
    return [x.prefixed("integrity-enclave: ") for x in decision.reasons]  # notes too


def appraise_host_ima(
    policy: Policy | None,
    host_policy: str,
    name: str,
    whole: bytes | ListBytes,
    baseline: ImaBaseline | None,
    at: datetime,
) -> tuple[list[Reason], ImaRound | None, ImaAppraisal | None]:
    """The IMA list (template hashes, PCR replay, signatures) and the host policy over it,
    incrementally from ``baseline`` (None: from the list's start). Returns every reason (notes
    too; a changed prefix is ``ima.prefix``), the state to keep, and the appraisal (for the TPM's
    PCR 10 comparison); the last two are None when the list could not be appraised."""
    previous = baseline.state if baseline is not None else None
    whole_list = baseline.whole_list if baseline is not None else None
    try:
        appraisal = appraise_measurement_list(whole, state=previous, source=f"{name}:ima")
    except ImaPrefixChanged as e:
        return [Reason.from_error("ima.prefix", e)], None, None
    except ImaPrefixNotHeld as e:  # the VM holds only the prefix's hash and must judge it: whole list
        return [Reason.from_error(PREFIX_NOT_HELD, e)], None, None
    except FtrustError as e:
        return [Reason.from_error("ima.list", e)], None, None
    found = [] if appraisal.ok else [f.reason() for f in appraisal.findings]
    if policy is not None:
        claims = ClaimSet(verified_at=at, ima=appraisal.claims, subject=name)
        decision, whole_list = policy.evaluate_host_round(host_policy, claims, whole_list)
        found.extend(decision.reasons)  # notes too: kept with the verdict
    persisted = appraisal.state.to_json()
    if whole_list is not None:  # carried with the IMA state: 'require measured' across rounds
        persisted["host_policy_state"] = whole_list.to_json()
    state_json = json.dumps(persisted, sort_keys=True)
    ima = ImaRound(state_json, int(appraisal.entry_count), appraisal.state, whole_list, passed=not denials(found))
    return found, ima, appraisal


def check_ima(
    policy: Policy | None, host_policy: str, name: str, whole: ListBytes, baseline: ImaBaseline | None, at: datetime,
    r: _Round, *, tail_retry: bool = False,
) -> list[Reason]:  # fmt: skip
    """:func:`appraise_host_ima` from the held state, or from the start when the TPM says the host
    rebooted. When the appraisal needs a prefix the VM holds only by its hash (``tail_retry``: the
    VM fetched this tail), the manager asks for the whole list instead."""
    found, r.ima, r.appraisal = appraise_host_ima(
        policy, host_policy, name, whole, None if r.fresh_boot else baseline, at
    )
    if r.ima is None and tail_retry and any(x.rule == PREFIX_NOT_HELD for x in found):
        r.tail_mismatch = True  # e.g. the TPM says the host rebooted: appraise the whole list, sent again
    return found


def check_tpm_quote(e: HostEvidence, pin: TpmPin, tpm: HostTpmEvidence, r: _Round) -> list[Reason]:
    """The TPM quote is signed by the pinned AK over this nonce, its PCR 10 is what the IMA list
    replays to, and its clock moved forward (``host.tpm.*``; a reboot is a note)."""
    ak = TpmKey(public_key_of(parse_public(pin.ak_public)), parse_public(pin.ak_public))
    result: QuoteVerification = verify_quote(
        tpm.attest, parse_signature(tpm.signature_bytes), ak, tpm.pcrs, tpm_qualifying_data(e.nonce),
        ima=r.appraisal, previous=pin.last_clock, previous_firmware=pin.last_firmware,
    )  # fmt: skip
    r.tpm_claims = TpmClaims(
        anchored=result.ok,
        pcrs={} if result.failed(TpmCheck.PCR_DIGEST) else {b: {p: v.hex() for p, v in vals.items()}
                                                          for b, vals in tpm.pcrs.items()},
        # the first verified round after registration records the baseline (tpm_attestation.py)
        registered_pcrs=pin.boot_pcrs if pin.boot_pcrs is not None else tpm.boot_pcrs(),
    )  # fmt: skip
    r.info["tpm"] = {"boot": result.round.change.value, "ima_bank": result.ima_bank,
                     "attest_sha256": hashlib.sha256(tpm.attest_bytes).hexdigest()}  # fmt: skip
    return [
        Reason(f.code.value, f.message, None, f.evidence, ReasonLevel.DENY if f.denies else ReasonLevel.NOTE)
        for f in result.findings
    ]


def check_tpm_policy(policy: Policy | None, host_policy: str, claims: TpmClaims | None) -> list[Reason]:
    """The host policy's ``tpm`` and ``boot_pcrs`` settings, judged like its other rules."""
    if policy is None:
        return []
    return list(policy.evaluate_host_tpm(host_policy, claims).reasons)


def judge_host(case: HostCase, policy: Policy | None, settings: HostSettings, *, at: datetime) -> HostJudgement:
    """Every check of one host's evidence; see the module's docstring for the stages."""
    e, record = case.evidence, case.record
    host_policy = host_policy_of(record, policy)
    r = _Round(info={"host_policy": host_policy})
    r.info |= {"quote_sha256": hashlib.sha256(e.quote).hexdigest(), "ima_source": e.ima_source}
    c = Checks()
    nonce_fresh = _protocol(case, c, r, at)
    gate = c.passed
    claims: EnclaveClaims | None = None
    verified = False
    key: str | None = None
    repin = record.repin_requested_by is not None
    # stage 2
    if gate:
        r.whole = whole_ima_list(e, case.held, record)
        r.info |= {
            "ima_list_sha256": r.whole.sha256.hexdigest(),
            "ima_list_bytes": len(r.whole),
            "ima_offset": e.ima_offset,
            "ima_bytes_sent": len(e.ima_list),
        }
        quote_ok = c.run("sgx.quote", lambda: check_quote(case.quote))
        if quote_ok and isinstance(case.quote, EnclaveClaims):
            claims = case.quote
            r.info |= {"mrenclave": claims.mrenclave, "platform": platform_identity(claims)}
            verified = c.run(
                "protocol.binding",
                lambda: check_binding(e, claims, r, tail_retry=case.tail_retry),
            )
    if verified and claims is not None:
        key = platform_key(claims)
        if repin:
            r.info |= {"repin_requested_by": record.repin_requested_by, "repinned_from": record.platform_key}
        else:
            c.run(
                "protocol.platform",
                lambda: pinned_platform(record, claims, require_linkable_epid=settings.require_linkable_epid),
            )
        # stage 3
        c.run("host.integrity_enclave", lambda: check_integrity_enclave(policy, host_policy, claims, at))
        assert r.whole is not None
        whole = r.whole.data
        c.run(
            "host.ima",
            lambda: check_ima(policy, host_policy, e.host, whole, case.baseline, at, r, tail_retry=case.tail_retry),
        )
        if case.tpm_pin is not None and r.tpm is not None:
            pin, tpm = case.tpm_pin, r.tpm
            c.run("host.tpm.quote", lambda: check_tpm_quote(e, pin, tpm, r))
        c.run("host.tpm.policy", lambda: check_tpm_policy(policy, host_policy, r.tpm_claims))
    return HostJudgement(
        host=e.host,
        host_policy=host_policy,
        reasons=tuple(c.reasons),
        checks=tuple(c.ran),
        nonce_fresh=nonce_fresh,
        gate_passed=gate,
        verified=verified,
        claims=claims,
        platform_key=key,
        evidence_info=r.info,
        ima=r.ima,
        whole_list=r.whole if verified else None,
        tpm_evidence=r.tpm if case.tpm_pin is not None else None,
        tail_mismatch=r.tail_mismatch,
        repin=repin,
        list_sha256=r.whole.sha256.hexdigest() if r.whole is not None else None,
    )
