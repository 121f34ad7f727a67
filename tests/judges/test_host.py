"""judge_host: each check passing and failing, every reason reported together, on values only."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from floodlight_trust.evidence.ima.appraise import ListBytes
from floodlight_trust.evidence.ima.sha256state import Sha256State
from floodlight_trust.judges.host import (
    HeldList,
    HostCase,
    HostSettings,
    check_ima_offset,
    check_integrity_enclave,
    check_tpm_presence,
    gate,
    host_policy_of,
    judge_host,
)
from floodlight_trust.judges.platform import pinned_platform
from floodlight_trust.reasons import Reason, ReasonLevel
from tests.judges.support import (
    AT,
    FILES,
    PCK,
    host_claims,
    host_evidence,
    ima_list,
    nonce,
    policy,
    record,
    trusted_record,
)

SETTINGS = HostSettings()


def case(**changes: object) -> HostCase:
    c = HostCase(evidence=host_evidence(), record=record(), nonce=nonce(), quote=host_claims())
    return replace(c, **changes)  # type: ignore[arg-type]


def rules(reasons: tuple[Reason, ...] | list[Reason]) -> list[str]:
    return [r.rule for r in reasons if r.denies]


def test_good_evidence_of_a_registered_host_is_trusted_after_every_check() -> None:
    j = judge_host(case(), policy(), SETTINGS, at=AT)
    assert j.trusted and j.verified and j.nonce_fresh, j.reasons
    assert j.checks == (
        "protocol.ima_offset",
        "protocol.nonce",
        "host.tpm.presence",
        "sgx.quote",
        "protocol.binding",
        "protocol.platform",
        "host.integrity_enclave",
        "host.ima",
        "host.tpm.policy",
    )
    assert j.ima is not None and j.ima.entries == len(FILES) and j.platform_key == f"dcap-pck:{PCK}"
    assert j.whole_list is not None and j.list_sha256 == hashlib.sha256(ima_list()).hexdigest()


def test_the_host_policy_is_the_hosts_own_else_the_only_one_else_default() -> None:
    assert host_policy_of(record(host_policy="mine"), policy()) == "mine"
    assert host_policy_of(record(), policy()) == "h"
    assert host_policy_of(record(), None) == "default"


def test_ima_offset_passes_for_the_held_prefix_and_fails_for_another() -> None:
    whole = ima_list()
    held = HeldList(ListBytes((whole,)), Sha256State(whole))
    assert check_ima_offset(host_evidence(b"", offset=len(whole)), held) == []
    [r] = check_ima_offset(host_evidence(b"", offset=10), held)
    assert r.rule == "protocol.ima_offset" and "byte 10" in r.message
    [r] = check_ima_offset(host_evidence(b"", offset=10), None)
    assert r.rule == "protocol.ima_offset"


def test_a_stale_nonce_gates_the_quote_and_the_list() -> None:
    bad = case(nonce=None, quote=None)
    assert not gate(bad, at=AT)
    j = judge_host(bad, policy(), SETTINGS, at=AT)
    assert rules(j.reasons) == ["protocol.nonce"] and not j.nonce_fresh and not j.verified
    assert "sgx.quote" not in j.checks and "host.ima" not in j.checks  # no work for a replay
    assert gate(case(), at=AT)


def test_a_registered_tpm_must_send_its_quote() -> None:
    from floodlight_trust.judges.host import _Round

    class Pin:  # only its presence matters to this check
        pass

    [r] = check_tpm_presence(host_evidence(), Pin(), _Round())  # type: ignore[arg-type]
    assert r.rule == "host.tpm.missing"
    assert check_tpm_presence(host_evidence(), None, _Round()) == []


def test_a_failed_quote_is_reported_and_nothing_after_it_runs() -> None:
    j = judge_host(case(quote=Reason("sgx.quote", "bad signature")), policy(), SETTINGS, at=AT)
    assert rules(j.reasons) == ["sgx.quote"] and not j.verified and j.nonce_fresh
    assert "protocol.binding" not in j.checks


def test_a_quote_that_binds_another_list_fails_the_binding() -> None:
    other = host_claims(ima_list({"boot_aggregate": FILES["boot_aggregate"]}))
    j = judge_host(case(quote=other), policy(), SETTINGS, at=AT)
    assert rules(j.reasons) == ["protocol.binding"] and not j.verified and not j.tail_mismatch


def test_the_platform_pin_passes_on_the_pinned_pck_and_fails_on_another() -> None:
    pinned = trusted_record()
    assert pinned_platform(pinned, host_claims(), require_linkable_epid=False) == []
    [r] = pinned_platform(pinned, host_claims(pck="55" * 32), require_linkable_epid=False)
    assert r.rule == "protocol.platform"


def test_the_integrity_enclave_passes_fails_is_noted_when_unsafe_and_fails_closed_without_policy() -> None:
    claims = host_claims()
    assert check_integrity_enclave(policy(), "h", claims, AT) == []
    [r] = check_integrity_enclave(policy(), "h", host_claims(mrenclave="99" * 32), AT)
    assert r.rule.startswith("integrity-enclave: ") and r.denies
    [r] = check_integrity_enclave(policy(integrity=""), "h", claims, AT)
    assert r.rule == "host.integrity_enclave" and r.denies
    [r] = check_integrity_enclave(policy(integrity="UNSAFE_any_integrity_enclave = true"), "h", claims, AT)
    assert r.rule == "host.integrity_enclave" and r.level is ReasonLevel.NOTE and "INSECURE" in r.message
    [r] = check_integrity_enclave(None, "default", claims, AT)
    assert r.rule == "policy"


def test_an_unknown_file_in_the_list_is_a_policy_reason() -> None:
    listing = ima_list({**FILES, "/usr/bin/evil": hashlib.sha256(b"evil").digest()})
    j = judge_host(
        case(evidence=host_evidence(listing), quote=host_claims(listing)), policy(), SETTINGS, at=AT
    )
    assert not j.trusted and j.verified and j.ima is not None and not j.ima.passed
    assert any("/usr/bin/evil" in r.message for r in j.reasons if r.denies)


def test_every_failing_check_reports_at_once() -> None:
    """The AllOf of sigstore-python: another platform, another integrity enclave and an unknown
    file are three reasons of one verdict, not the first of them."""
    listing = ima_list({**FILES, "/usr/bin/evil": hashlib.sha256(b"evil").digest()})
    quote = host_claims(listing, pck="55" * 32, mrenclave="99" * 32)
    j = judge_host(
        case(evidence=host_evidence(listing), record=trusted_record(), quote=quote), policy(), SETTINGS, at=AT
    )
    denied = rules(j.reasons)
    assert denied[0] == "protocol.platform" and any(d.startswith("integrity-enclave: ") for d in denied)
    assert any("/usr/bin/evil" in r.message for r in j.reasons if r.denies)
    assert j.verified and not j.trusted and "host.ima" in j.checks


def test_a_tail_continues_the_held_prefix_and_a_tail_that_does_not_bind_asks_for_the_whole_list() -> None:
    first = ima_list({"boot_aggregate": FILES["boot_aggregate"]})
    whole = ima_list()
    tail = whole[len(first) :]
    held = HeldList(ListBytes((first,)), Sha256State(first))
    e = host_evidence(tail, offset=len(first))
    j = judge_host(case(evidence=e, held=held, quote=host_claims(whole)), policy(), SETTINGS, at=AT)
    assert j.trusted and j.list_sha256 == hashlib.sha256(whole).hexdigest(), j.reasons
    stale = host_claims(first + b"another tail\n")  # the quote binds another list
    j = judge_host(case(evidence=e, held=held, quote=stale, tail_retry=True), policy(), SETTINGS, at=AT)
    assert j.tail_mismatch and not j.verified


def test_the_host_policys_tpm_rule_passes_an_anchored_host_and_denies_an_unanchored_one() -> None:
    from floodlight_trust.claims import TpmClaims
    from floodlight_trust.judges.host import check_tpm_policy

    strict = policy(extra_host="    tpm = true")
    assert check_tpm_policy(strict, "h", TpmClaims(anchored=True)) == []
    [r] = check_tpm_policy(strict, "h", None)
    assert r.rule == "tpm" and r.denies
    assert check_tpm_policy(None, "default", None) == []  # no policy: the integrity check already denied
    j = judge_host(case(), strict, SETTINGS, at=AT)  # evidence without a TPM quote, judged in full
    assert rules(j.reasons) == ["tpm"] and j.verified


def test_a_tail_bound_through_a_saved_state_is_appraised_and_one_that_needs_its_prefix_asks_for_the_whole_list() -> None:
    """A restarted VM holds the prefix only by its saved SHA-256 state: a tail that binds through it
    is appraised from the baseline; without a baseline to continue (e.g. a new policy, or the TPM
    saying the host rebooted) the prefix's bytes are needed, so a tail the VM fetched is asked for
    again whole, and pushed evidence is refused (protocol.ima_offset)."""
    from floodlight_trust.evidence.ima.appraise import ImaState, appraise_measurement_list
    from floodlight_trust.judges.host import ImaBaseline

    first = ima_list({"boot_aggregate": FILES["boot_aggregate"]})
    whole = ima_list()
    state = ImaState.from_json(appraise_measurement_list(first).state.to_json())
    resume = state.resume_point()
    assert resume is not None
    held = HeldList(*resume)
    e = host_evidence(whole[len(first) :], offset=len(first))
    baseline = ImaBaseline(state, None)
    j = judge_host(case(evidence=e, held=held, baseline=baseline, quote=host_claims(whole)), policy(), SETTINGS, at=AT)
    assert j.verified and j.ima is not None and j.ima.entries == len(FILES), j.reasons
    assert j.list_sha256 == hashlib.sha256(whole).hexdigest()
    fetched = case(evidence=e, held=HeldList(*resume), quote=host_claims(whole), tail_retry=True)
    j = judge_host(fetched, policy(), SETTINGS, at=AT)
    assert j.tail_mismatch and j.verified  # the binding held; the appraisal needs the whole list
    j = judge_host(replace(fetched, tail_retry=False), policy(), SETTINGS, at=AT)
    assert not j.tail_mismatch and rules(j.reasons) == ["protocol.ima_offset"] and j.ima is None
