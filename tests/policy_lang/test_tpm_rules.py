"""Host policies' TPM rules: `tpm = true` and `boot_pcrs` (values per bank, or "unchanged"), checked
with located errors and judged with one reason per failed PCR."""

from __future__ import annotations

import pytest

from floodlight_trust.claims import TpmClaims
from floodlight_trust.errors import PolicyError
from policy_lang import compile_policy_text

ZERO = "00" * 32
ONE = "11" * 32


def policy(settings: str) -> str:
    return f'host h {{\n    template in {{"ima-ng"}}\n{settings}\n}}\n'


def test_tpm_required_refuses_an_unanchored_host_with_the_rule_location() -> None:
    p = compile_policy_text(policy("    tpm = true"), filename="site.policy")
    for facts in (None, TpmClaims(anchored=False)):
        d = p.evaluate_host_tpm("h", facts)
        assert not d.allowed
        assert [(r.rule, r.location) for r in d.failures] == [("tpm", "site.policy:3")]
    assert p.evaluate_host_tpm("h", TpmClaims(anchored=True)).allowed


def test_boot_pcr_values_per_bank() -> None:
    p = compile_policy_text(policy(f'    tpm = true\n    boot_pcrs = {{"sha256:0={ZERO}", "sha256:7={ONE}"}}'))
    good = TpmClaims(anchored=True, pcrs={"sha256": {0: ZERO, 7: ONE, 10: ONE}})
    assert p.evaluate_host_tpm("h", good).allowed
    bad = TpmClaims(anchored=True, pcrs={"sha256": {0: ONE}})
    d = p.evaluate_host_tpm("h", bad)
    assert [r.rule for r in d.failures] == ["boot_pcrs", "boot_pcrs"]
    assert f"sha256 PCR 0 is {ONE}, the policy expects {ZERO}" in d.failures[0].message
    assert "(not quoted)" in d.failures[1].message


def test_boot_pcrs_unchanged_since_registration() -> None:
    p = compile_policy_text(policy('    boot_pcrs = "unchanged"'))
    baseline = {"sha256": {0: ZERO, 4: ONE}}
    assert p.evaluate_host_tpm("h", TpmClaims(True, {"sha256": {0: ZERO, 4: ONE}}, baseline)).allowed
    d = p.evaluate_host_tpm("h", TpmClaims(True, {"sha256": {0: ZERO, 4: ZERO}}, baseline))
    assert [r.evidence["pcr"] for r in d.failures] == [4]
    assert "at registration it was" in d.failures[0].message
    assert not p.evaluate_host_tpm("h", TpmClaims(True, {}, None)).allowed


def test_a_policy_without_tpm_rules_judges_nothing_about_tpms() -> None:
    assert compile_policy_text(policy("")).evaluate_host_tpm("h", None).allowed


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('    boot_pcrs = "sometimes"', 'boot_pcrs is "unchanged" or a set'),
        ('    boot_pcrs = {"md5:0=00"}', "bank one of sha1, sha256"),
        (f'    boot_pcrs = {{"sha256:10={ZERO}"}}', "PCR 10 is judged by the IMA list"),
        ('    boot_pcrs = {"sha256:0=abcd"}', "must be 32 bytes of hex"),
        (f'    boot_pcrs = {{"sha256:0={ZERO}", "sha256:0={ONE}"}}', "given twice"),
        ("    tpm = 1", "takes the literal true or false"),
    ],
)
def test_bad_tpm_settings_are_located_errors(setting: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        compile_policy_text(policy(setting), filename="site.policy")
    text = str(info.value)
    assert message in text and "site.policy:3:" in text
