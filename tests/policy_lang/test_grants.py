"""REST grants in enroll rules: compiled into the certificate profile, checked, formatted."""

from __future__ import annotations

import pytest

from floodlight_trust.errors import PolicyError
from floodlight_trust.pki.grants import HttpMethod, RestGrant
from policy_lang import PolicyErrors, compile_policy_text
from policy_lang.fmt import format_text

ZERO = "00" * 32
HEAD = f"""
host h {{ allow any digest in {{"{ZERO}"}} }}
enclave e {{ identity: mrenclave in {{"{ZERO}"}} }}
"""


def enroll(body: str) -> str:
    return HEAD + 'enroll mon for "vnf-mon-*" {\n    host = h\n    enclave = e\n' + body + "}\n"


def test_grants_compile_into_the_profile_in_order() -> None:
    policy = compile_policy_text(enroll('    grant GET "/wm/core/**"\n    grant GET "/wm/device/"\n'))
    rule = policy.enroll_rule("vnf-mon-1")
    assert rule is not None
    assert rule.profile.rest_grants == (
        RestGrant(HttpMethod.GET, "/wm/core/**"),
        RestGrant(HttpMethod.GET, "/wm/device/"),
    )
    assert rule.profile.render(vnf="vnf-mon-1", host="h").vnf is True
    assert rule.profile.render(vnf="vnf-mon-1", host="h").rest_grants == rule.profile.rest_grants


def test_no_grant_means_no_rest_access() -> None:
    rule = compile_policy_text(enroll("")).enroll_rule("vnf-mon-1")
    assert rule is not None and rule.profile.rest_grants == ()


def test_every_grant_error_is_located_with_a_hint() -> None:
    text = enroll(
        '    grant GETT "/wm/x"\n    grant POST "wm/x"\n    grant GET "/wm/**/x"\n    grant GET "/a"\n    grant GET "/a"\n'
    )
    with pytest.raises(PolicyErrors) as info:
        compile_policy_text(text, filename="p.policy")
    lines = str(info.value).split("\n")
    assert "p.policy:7:11: unknown HTTP method 'GETT' in grant" in lines
    hints = [e.hint for e in info.value.errors]
    assert "did you mean 'GET'?" in hints
    assert "p.policy:8:16: malformed path pattern 'wm/x': a path pattern starts with '/'" in lines
    assert "p.policy:9:15: malformed path pattern '/wm/**/x': '**' is only allowed as the last segment" in lines
    assert "p.policy:11:5: grant GET /a is already given at p.policy:10:5" in lines


def test_grant_is_a_keyword() -> None:
    with pytest.raises(PolicyError):
        compile_policy_text(enroll("    grant = 1\n"))


def test_formatter_prints_grants_canonically_and_keeps_comments() -> None:
    text = enroll('  grant   GET    "/wm/core/**"   # read-only\n\tgrant POST "/wm/staticflowpusher/json"\n')
    formatted = format_text(text)
    assert '    grant GET "/wm/core/**"  # read-only\n    grant POST "/wm/staticflowpusher/json"\n' in formatted
    assert format_text(formatted) == formatted
    assert compile_policy_text(formatted).enrolls[0].profile.rest_grants == (
        compile_policy_text(text).enrolls[0].profile.rest_grants
    )
