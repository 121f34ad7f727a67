"""judge_enrollment: each check passing and failing, on values only; and the proof that enrollment
and reload-policy judge admission the same way (reload builds its inputs from what is stored with
an enrollment, and calls the same checks)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from floodlight_trust.claims import enclave_to_json
from floodlight_trust.judges.enrollment import (
    Admission,
    EnrollmentCase,
    EnrollmentSettings,
    check_key_type,
    check_profile_identities,
    enclave_key,
    gate,
    judge_admission,
    judge_enrollment,
    spki_sha256,
)
from floodlight_trust.manager.enrollment import ENCLAVE_KEY_FIELD
from floodlight_trust.manager.reload import stored_enclave
from floodlight_trust.protocol import b64encode
from floodlight_trust.protocol.evidence import KeyMode
from floodlight_trust.reasons import Reason, ReasonLevel
from floodlight_trust.storage.records import HostStatus
from policy_lang import Policy
from tests.judges.support import (
    AT,
    PCK,
    VNF_ENCLAVE,
    ec_spki,
    enclave_claims,
    enclave_evidence,
    nonce,
    policy,
    registration,
    rsa_spki,
    trusted_record,
)

SETTINGS = EnrollmentSettings(host_trust=timedelta(seconds=120))
EC_KEY = ec_spki()
RSA_KEY = rsa_spki()
ADMISSION_CHECKS = (
    "policy.enroll",
    "policy.enroll.host_policy",
    "protocol.platform",
    "vnf.identity",
    "enclave.policy",
    "policy.profile",
    "protocol.key",
)


def case(spki: bytes = EC_KEY, mode: KeyMode = KeyMode.ENCLAVE, vnf: str = "vnf-a", **changes: object) -> EnrollmentCase:
    c = EnrollmentCase(
        evidence=enclave_evidence(spki, vnf=vnf),
        key_mode=mode,
        host_record=trusted_record(),
        registration=registration(vnf),
        nonce=nonce("enclave", vnf=vnf),
        quote=enclave_claims(spki),
    )
    return replace(c, **changes)  # type: ignore[arg-type]


def denied(reasons: tuple[Reason, ...]) -> list[str]:
    return [r.rule for r in reasons if r.denies]


def test_a_registered_vnf_on_a_trusted_host_is_admitted_after_every_check() -> None:
    j = judge_enrollment(case(), policy(), SETTINGS, at=AT)
    assert j.allowed and j.authentic and j.nonce_fresh, j.reasons
    assert j.checks == ("protocol.nonce", "sgx.quote", "protocol.binding", "host.trust", *ADMISSION_CHECKS)
    assert j.rule is not None and j.rule.name == "r" and j.profile is not None
    assert j.evidence_info is not None and j.evidence_info["public_key_sha256"] == spki_sha256(EC_KEY)
    # the key the protocol.key check parsed, which the certificate is issued for
    assert j.public_key is not None and _spki(j.public_key) == EC_KEY


def test_a_stale_nonce_gates_the_quote() -> None:
    stale = case(nonce=nonce("enclave", vnf="vnf-a", used_at=AT), quote=None)
    assert not gate(stale, at=AT) and gate(case(), at=AT)
    j = judge_enrollment(stale, policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["protocol.nonce"] and j.checks == ("protocol.nonce",) and not j.nonce_fresh


def test_a_failed_quote_is_reported_and_nothing_that_needs_its_claims_runs() -> None:
    j = judge_enrollment(case(quote=Reason("sgx.quote", "bad")), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["sgx.quote"] and not j.authentic and "enclave.policy" not in j.checks


def test_a_quote_for_another_key_fails_the_binding_but_every_other_check_still_reports() -> None:
    j = judge_enrollment(case(quote=enclave_claims(ec_spki())), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["protocol.binding"] and not j.authentic
    assert j.checks[-len(ADMISSION_CHECKS) :] == ADMISSION_CHECKS


def test_the_host_must_be_trusted_and_recently() -> None:
    j = judge_enrollment(case(host_record=trusted_record(status=HostStatus.UNTRUSTED)), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["host.trust"] and "not trusted" in j.reasons[0].message
    stale = AT - timedelta(seconds=600)
    j = judge_enrollment(case(host_record=trusted_record(last_trusted_at=stale)), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["host.trust"] and "600 s ago" in j.reasons[0].message


def test_no_enroll_rule_for_the_name() -> None:
    j = judge_enrollment(case(vnf="other", registration=None), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["policy.enroll"] and "enclave.policy" not in j.checks


def test_the_rules_host_policy_must_judge_this_host() -> None:
    j = judge_enrollment(case(host_record=trusted_record(host_policy="elsewhere")), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["policy.enroll"] and "'elsewhere'" in j.reasons[0].message


def test_the_quote_must_come_from_the_hosts_platform() -> None:
    j = judge_enrollment(case(quote=enclave_claims(EC_KEY, pck="55" * 32)), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["protocol.platform"]
    assert trusted_record().platform_pck_sha256 == PCK


def test_the_name_is_bound_to_its_first_enclave_and_a_key_to_one_name() -> None:
    other = registration(bound_public_key_sha256="66" * 32, bound_mrenclave=VNF_ENCLAVE)
    j = judge_enrollment(case(registration=other), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["vnf.binding"] and "bound to the enclave of its first enrollment" in j.reasons[0].message
    j = judge_enrollment(case(key_holder=("h1", "vnf-b")), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["vnf.binding"] and "one enclave holds one name" in j.reasons[0].message
    j = judge_enrollment(case(registration=registration(enroll_rule="old")), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) == ["vnf.enroll_rule"]


def test_the_enclave_policy_judges_the_claims() -> None:
    j = judge_enrollment(case(quote=enclave_claims(EC_KEY, mrsigner="77" * 32)), policy(), SETTINGS, at=AT)
    assert denied(j.reasons) and all(not r.rule.startswith(("protocol", "host", "vnf")) for r in j.reasons)


def test_a_vnf_certificate_carries_no_admin_or_controller_identity() -> None:
    assert check_profile_identities(_profile(policy())) == []
    [r] = check_profile_identities(_profile(policy(profile='san_uri = "urn:ftrust:admin:root"')))
    assert r.rule == "policy.profile" and "admin identity" in r.message
    [r] = check_profile_identities(_profile(policy(profile='san_uri = "urn:ftrust:controller:c1"')))
    assert r.rule == "policy.profile" and "controller identity" in r.message


def _profile(p: Policy) -> object:
    rule = p.enroll_rule("vnf-a")
    assert rule is not None
    return rule.profile.render(vnf="vnf-a", host="h1")


def test_the_key_type_fits_the_key_mode() -> None:
    assert check_key_type(EC_KEY, KeyMode.VM_GENERATED) == []
    assert check_key_type(RSA_KEY, KeyMode.ENCLAVE) == []
    [r] = check_key_type(RSA_KEY, KeyMode.VM_GENERATED)
    assert r.rule == "protocol.key" and "EC P-256" in r.message
    [r] = check_key_type(b"not a key", KeyMode.ENCLAVE)
    assert r.rule == "protocol.key" and "SubjectPublicKeyInfo" in r.message
    [r] = check_key_type(None, KeyMode.VM_GENERATED)  # an enrollment stored before its key was
    assert r.level is ReasonLevel.NOTE
    assert enclave_key(b"not a key", KeyMode.ENCLAVE)[0] is None
    key, found = enclave_key(RSA_KEY, KeyMode.VM_GENERATED)  # refused, and still the key it is
    assert key is not None and _spki(key) == RSA_KEY and found[0].rule == "protocol.key"


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_every_failing_admission_check_reports_at_once() -> None:
    p = policy(profile='san_uri = "urn:ftrust:admin:root"')
    j = judge_enrollment(
        case(RSA_KEY, KeyMode.VM_GENERATED, quote=enclave_claims(RSA_KEY, pck="55" * 32)), p, SETTINGS, at=AT
    )
    assert denied(j.reasons) == ["protocol.platform", "policy.profile", "protocol.key"]


VARIANTS = [
    ("admitted", "", EC_KEY, KeyMode.ENCLAVE, {}),
    ("admin identity in the profile", 'san_uri = "urn:ftrust:admin:root"', EC_KEY, KeyMode.ENCLAVE, {}),
    ("controller identity", 'san_uri = "urn:ftrust:controller:c1"', EC_KEY, KeyMode.ENCLAVE, {}),
    ("RSA key in vm-generated mode", "", RSA_KEY, KeyMode.VM_GENERATED, {}),
    ("EC key in vm-generated mode", "", EC_KEY, KeyMode.VM_GENERATED, {}),
    ("another signer", "", EC_KEY, KeyMode.ENCLAVE, {"mrsigner": "77" * 32}),
    ("another platform", "", EC_KEY, KeyMode.ENCLAVE, {"pck": "55" * 32}),
]


@pytest.mark.parametrize(("why", "profile", "spki", "mode", "claim_changes"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_enroll_and_reload_give_the_same_verdict_on_the_same_inputs(
    why: str, profile: str, spki: bytes, mode: KeyMode, claim_changes: dict[str, str]
) -> None:
    """Enrollment judges fresh evidence; reload judges the claims and key stored with the
    enrollment (``reload.stored_enclave`` reads them back) with the same admission checks: the
    verdicts agree, including the admin-URI and the key-type checks the first reload skipped."""
    p = policy(profile=profile)
    claims = enclave_claims(spki, **claim_changes)
    enrolled = judge_enrollment(case(spki, mode, quote=claims), p, SETTINGS, at=AT)
    stored = enclave_to_json(claims) | {ENCLAVE_KEY_FIELD: b64encode(spki)}  # what enrollment stores
    again_claims, again_key = stored_enclave(stored)
    assert again_claims == claims and again_key == spki
    admission = Admission(
        host="h1",
        vnf="vnf-a",
        key_mode=mode,
        public_key=again_key,
        claims=again_claims,
        host_record=trusted_record(),
        registration=registration(),
        key_holder=None,
    )
    reloaded = judge_admission(admission, p, SETTINGS, at=AT)
    assert reloaded.checks == ADMISSION_CHECKS
    assert [r for r in enrolled.reasons if r.rule not in ("protocol.nonce",)] == list(reloaded.reasons)
    assert enrolled.allowed == reloaded.allowed == (why.startswith(("admitted", "EC key")))
