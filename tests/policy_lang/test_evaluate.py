"""Evaluation: verdicts with every reason, in a deterministic order, with evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from floodlight_trust.claims import ClaimSet, EvidenceType, SignatureStatus, TcbStatus
from floodlight_trust.errors import PolicyError
from policy_lang import compile_policy_text

from .helpers import AT, PHALA_MRENCLAVE, PHALA_MRSIGNER, d, enclave_claims, host_claims

HOST = f"""
key ima_key = "d13f7ba5"
host h {{
    template in {{"ima-ng", "ima-sig"}}
    allow "/usr/bin/a" digest in {{"{d(1)}", "{d(11)}"}}
    allow "/usr/bin/b" digest in {{"{d(2)}"}}
    allow "/opt/vnf/**" digest in {{"{d(3)}"}}
    allow any digest in {{"{d(4)}"}}
    exclude "/tmp/*"
    exclude regex ".*/cache/"
    require measured "/usr/bin/a"
    require signature "/lib/modules/**" by ima_key
}}
"""


def test_clean_list_is_allowed() -> None:
    policy = compile_policy_text(HOST, filename="h.policy")
    rows = [
        ("/usr/bin/a", d(11)),
        ("/usr/bin/b", d(2)),
        ("/opt/vnf/bin/fw", d(3)),
        ("/anything", d(4)),
        ("/tmp/x", d(99)),
        ("/var/cache/y", d(98)),
    ]
    decision = policy.evaluate_host("h", host_claims(rows))
    assert decision.allowed and decision.reasons == ()
    assert decision.policy == "h" and decision.policy_version == policy.version


def test_unknown_file_is_named_with_its_digest() -> None:
    policy = compile_policy_text(HOST, filename="h.policy")
    decision = policy.evaluate_host("h", host_claims([("/usr/bin/a", d(1)), ("/usr/bin/xyz", d(7))]))
    assert not decision.allowed
    (reason,) = decision.reasons
    assert reason.rule == "allowlist"
    assert reason.location == "h.policy:3"
    assert reason.message == f"unknown file /usr/bin/xyz (sha256:{d(7)}) is not in the allowlist"
    assert reason.evidence["path"] == "/usr/bin/xyz" and reason.evidence["found"] == d(7)
    assert reason.evidence["index"] == 1


def test_every_failure_in_a_deterministic_order() -> None:
    policy = compile_policy_text(HOST, filename="h.policy")
    rows = [("/usr/bin/b", d(5)), ("/tmp/sub/x", d(6)), ("/opt/vnf/x", d(8)), ("/lib/modules/m.ko", d(4))]
    claims = host_claims(rows, signatures=[(SignatureStatus.NONE, None)] * 3 + [(SignatureStatus.VALID, "aabbccdd")])
    decision = policy.evaluate_host("h", claims)
    assert [(r.rule, r.location, r.message) for r in decision.reasons] == [
        ("allowlist", "h.policy:6", f"file /usr/bin/b has digest sha256:{d(5)}, expected one of {{{d(2)}}}"),
        ("allowlist", "h.policy:3", f"unknown file /tmp/sub/x (sha256:{d(6)}) is not in the allowlist"),
        ("allowlist", "h.policy:7", f"file /opt/vnf/x has digest sha256:{d(8)}, expected one of {{{d(3)}}}"),
        ("require_measured", "h.policy:11", "required file /usr/bin/a was not measured"),
        (
            "require_signature",
            "h.policy:12",
            "file /lib/modules/m.ko is signed by key aabbccdd, not by ima_key {d13f7ba5}",
        ),
    ]
    assert policy.evaluate_host("h", claims) == decision


def test_templates_violations_and_boot_aggregate() -> None:
    policy = compile_policy_text(
        f'host h {{\n    template in {{"ima-sig"}}\n    boot_aggregate in {{"{d(9)}"}}\n'
        f'    allow any digest in {{"{d(1)}"}}\n}}\n',
        filename="h.policy",
    )
    claims = host_claims([("boot_aggregate", d(1)), ("/x", "0" * 64)], violations=frozenset({1}), boot_aggregate=d(1))
    reasons = policy.evaluate_host("h", claims).reasons
    assert [r.rule for r in reasons] == ["template", "boot_aggregate", "violation"]
    assert (
        reasons[0].message
        == "2 entries use template 'ima-ng', expected one of {ima-sig} (first: entry 0, boot_aggregate)"
    )
    assert reasons[1].message == f"boot_aggregate is {d(1)}, expected one of {{{d(9)}}}"
    assert reasons[2].message.startswith("measurement violation (zeroed entry) for /x at entry 1")
    allowed = compile_policy_text(
        f'host h {{\n    allow any digest in {{"{d(1)}"}}\n    allow_violations = true\n}}\n'
    ).evaluate_host("h", claims)
    assert allowed.allowed


def test_missing_evidence_and_unknown_policy() -> None:
    policy = compile_policy_text(HOST, filename="h.policy")
    decision = policy.evaluate_host("h", ClaimSet(verified_at=AT))
    assert not decision.allowed and decision.reasons[0].message == "no IMA measurement list in the claims"
    with pytest.raises(PolicyError, match="no host policy 'hh'"):
        policy.evaluate_host("hh", ClaimSet(verified_at=AT))


ENCLAVE = f"""
set builds = {{"{PHALA_MRENCLAVE}"}}
rule patched = tcb_status == UpToDate or "INTEL-SA-00615" in advisory_ids
enclave vnf {{
    identity: mrenclave in builds and mrsigner == "{PHALA_MRSIGNER}"
    svn: isv_svn >= 0 and isv_prod_id == 0
    tcb: patched and tcb_status != OutOfDate
    evidence: evidence_type in {{DCAP}}
    tolerate advisories {{"INTEL-SA-00289", "INTEL-SA-00615"}}
    max_collateral_age = 2d
}}
enclave lab {{
    identity: mrenclave in builds
    allow_debug = true
    allow_simulated = true
}}
"""


def test_real_phala_enclave_is_allowed() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    decision = policy.evaluate_enclave("vnf", enclave_claims())
    assert decision.allowed, decision.explain()


def test_mrenclave_mismatch_names_expected_and_found() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    other = "840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4"
    decision = policy.evaluate_enclave("vnf", enclave_claims(mrenclave=other))
    (reason,) = decision.reasons
    assert (reason.rule, reason.location) == ("identity", "e.policy:5")
    assert reason.message == f"mrenclave is {other}, expected one of {{{PHALA_MRENCLAVE}}}"
    assert reason.evidence["found"] == other and reason.evidence["expected"] == frozenset({PHALA_MRENCLAVE})


def test_every_enclave_failure_is_reported() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    claims = enclave_claims(
        isv_prod_id=3,
        tcb_status=TcbStatus.OUT_OF_DATE,
        advisory_ids=("INTEL-SA-00828",),
        evidence_type=EvidenceType.IAS,
        debug=True,
        simulated=True,
        collateral_issued_at=datetime(2025, 6, 1, tzinfo=UTC),
    )
    reasons = policy.evaluate_enclave("vnf", claims).reasons
    assert [(r.rule, r.message) for r in reasons] == [
        (
            "simulated",
            "evidence comes from a SIMULATED SGX platform; refused unless the enclave policy says "
            "allow_simulated = true",
        ),
        ("debug", "debug enclave refused: its memory can be read by the host (set allow_debug = true to accept)"),
        ("svn", "isv_prod_id is 3, expected 0"),
        (
            "tcb",
            "rule patched: none of the alternatives holds: tcb_status is OutOfDate, expected UpToDate; "
            "INTEL-SA-00615 is not in advisory_ids [INTEL-SA-00828]",
        ),
        ("tcb", "tcb_status is OutOfDate, expected != OutOfDate"),
        ("evidence", "evidence_type is IAS, expected one of {DCAP}"),
        ("tolerate_advisories", "platform is affected by advisories not tolerated: INTEL-SA-00828"),
        ("max_collateral_age", "collateral issued 19.5d before verification; at most 2d allowed"),
    ]


def test_insecure_switches_allow_with_loud_notes() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    decision = policy.evaluate_enclave("lab", enclave_claims(debug=True, simulated=True))
    assert decision.allowed
    assert [(r.rule, r.level, r.location) for r in decision.reasons] == [
        ("simulated", "note", "e.policy:15"),
        ("debug", "note", "e.policy:14"),
    ]
    assert "INSECURE" in decision.reasons[0].message
    assert decision.failures == ()


def test_decision_json_round_trips_through_json() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    decision = policy.evaluate_enclave("vnf", enclave_claims(mrenclave="00" * 32))
    data = json.loads(json.dumps(decision.to_json()))
    assert data["allowed"] is False and data["policy"] == "vnf" and data["policy_version"] == policy.version
    assert data["reasons"][0]["evidence"]["expected"] == [PHALA_MRENCLAVE]
    assert data["reasons"][0]["location"] == "e.policy:5"


def test_no_enclave_evidence() -> None:
    policy = compile_policy_text(ENCLAVE, filename="e.policy")
    decision = policy.evaluate_enclave("vnf", ClaimSet(verified_at=AT))
    assert [r.message for r in decision.reasons] == ["no enclave evidence in the claims"]


def test_masks_and_not() -> None:
    policy = compile_policy_text(
        'enclave e {\n    prod: attributes & "02000000000000000000000000000000" == "00000000000000000000000000000000"\n'
        "    misc: not misc_select & 0x1 == 1\n}\n"
    )
    assert policy.evaluate_enclave("e", enclave_claims()).allowed
    bad = policy.evaluate_enclave("e", enclave_claims(attributes="07000000000000000700000000000000", misc_select=3))
    assert [r.message for r in bad.reasons] == [
        'attributes & "02000000000000000000000000000000" is 02000000000000000000000000000000, '
        "expected 00000000000000000000000000000000",
        "misc_select & 0x1 == 1 holds, but the policy requires it not to",
    ]


def test_negated_rule_reference_is_named() -> None:
    policy = compile_policy_text("rule lab = not debug\nenclave e {\n    prod: not lab\n}\n")
    (reason,) = policy.evaluate_enclave("e", enclave_claims()).reasons
    assert reason.message == "lab holds, but the policy requires it not to"
