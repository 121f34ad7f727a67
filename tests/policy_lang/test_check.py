"""Checking: every error at once, located, with suggestions; imports, includes, reference lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust.errors import PolicyError
from floodlight_trust.policy_files import FILES, load_policy
from policy_lang import PolicyErrors, compile_policy_text


def errors_of(text: str, tmp_path: Path | None = None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    return str(info.value).split("\n")


def test_all_errors_are_reported_at_once_in_file_order() -> None:
    lines = errors_of(
        "enclave e {\n"
        '    id: mrenclave in {"abcd"}\n'
        "    tcb: tcb_stat == UpToDate\n"
        "    t2: tcb_status == UpToDat\n"
        "    allow_debg = true\n"
        "}\n"
    )
    assert lines == [
        "p.policy:2:23: 'abcd' has 2 bytes; expected 32 bytes (64 hex digits)",
        "p.policy:3:10: unknown name 'tcb_stat'",
        "p.policy:4:23: unknown name 'UpToDat'",
        "p.policy:5:5: unknown enclave setting 'allow_debg'",
    ]


def test_unknown_names_get_did_you_mean() -> None:
    with pytest.raises(PolicyErrors) as info:
        compile_policy_text("enclave e {\n    x: mrenclav == mrsigner\n}\n", filename="p.policy")
    assert str(info.value) == "p.policy:2:8: unknown name 'mrenclav'"
    assert info.value.hint == "did you mean 'mrenclave'?"


def test_duplicate_names_name_the_first_declaration() -> None:
    assert errors_of('const a = 1\nset a = {"x"}\n') == [
        "p.policy:2:1: duplicate name 'a' (first declared at p.policy:1:1)"
    ]


def test_type_errors() -> None:
    lines = errors_of(
        "enclave e {\n"
        '    a: isv_svn >= "two"\n'
        "    b: tcb_status > UpToDate\n"
        "    c: isv_svn\n"
        '    d: mrenclave in {"x"}\n'
        "    max_collateral_age = 30\n"
        "}\n"
    )
    assert lines == [
        "p.policy:2:8: cannot compare claim isv_svn (int) with a str value",
        "p.policy:3:8: '>' compares integers; claim tcb_status (tcb_status) is not one",
        "p.policy:4:8: rule 'c' must be a condition, not a int",
        "p.policy:5:22: 'x' is not hex: 'x' at position 1 is not a hex digit",
        "p.policy:6:26: max_collateral_age is a duration such as 30d or 12h",
    ]


def test_hex_of_odd_length_says_its_length() -> None:
    digits63 = "3" * 63
    assert errors_of(f'key k = "{"a" * 7}"\nenclave e {{\n    id: mrenclave == "{digits63}"\n}}\n') == [
        "p.policy:1:9: key id 'aaaaaaa' has 7 hex digits, an odd number (two digits per byte)",
        f"p.policy:3:22: '{digits63}' has 63 hex digits; expected 64 hex digits (32 bytes)",
    ]


def test_insecure_switches_take_only_literals() -> None:
    assert errors_of("const yes = true\nenclave e {\n    allow_simulated = yes\n}\n") == [
        "p.policy:3:23: allow_simulated takes the literal true or false (no constants, so it is never set by accident)"
    ]


def test_enroll_rules_need_existing_policies() -> None:
    lines = errors_of('enroll x for "vnf-*" {\n    host = nohost\n    certificate { key_type = "ec-p257" }\n}\n')
    assert lines == [
        "p.policy:1:1: enroll x needs 'enclave = ...'",
        "p.policy:2:12: unknown host policy 'nohost'",
        "p.policy:3:30: unknown key type 'ec-p257'",
    ]


def test_import_cycle_and_missing_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.policy").write_text('import "b.policy"\n')
    (tmp_path / "b.policy").write_text('import "a.policy"\nimport "gone.policy"\n')
    with pytest.raises(PolicyError) as info:
        load_policy("a.policy")
    assert str(info.value).split("\n") == [
        "b.policy:1:8: import cycle: a.policy -> b.policy -> a.policy",
        "b.policy:2:8: cannot import 'gone.policy': file not found",
    ]


def test_imports_share_names_and_version_covers_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ids.policy").write_text('set builds = {"' + "ab" * 32 + '"}\n')
    (tmp_path / "ref.txt").write_text("cd" * 32 + "  /usr/bin/x\n")
    (tmp_path / "main.policy").write_text(
        'import "ids.policy"\nhost h {\n    include sha256sum "ref.txt"\n}\n'
        "enclave e {\n    id: mrenclave in builds\n}\n"
    )
    p1 = load_policy("main.policy")
    assert p1.sources == ["ids.policy", "main.policy", "ref.txt"]
    (tmp_path / "ref.txt").write_text("cd" * 32 + "  /usr/bin/y\n")
    p2 = load_policy("main.policy")
    assert p1.version != p2.version and len(p2.version) == 64


def test_missing_include_and_malformed_reference_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.sha256sum").write_text(
        "ab" * 32
        + "  /usr/bin/a\n"
        + "ab" * 31
        + "  /usr/bin/b\n"
        + "ab" * 32
        + " /usr/bin/c\n"
        + "zz" * 32
        + "  /usr/bin/d\n"
        + "ab" * 32
        + "  /usr/bin/e\n"
    )
    (tmp_path / "p.policy").write_text(
        'host h {\n    include sha256sum "ref.sha256sum"\n    include sha256sum "nope.sha256sum"\n}\n'
    )
    with pytest.raises(PolicyError) as info:
        load_policy("p.policy")
    # Every malformed line, not only the first (as every syntax error of a policy file).
    assert str(info.value).split("\n") == [
        "p.policy:3:23: cannot include nope.sha256sum: file not found",
        "ref.sha256sum:2:1: malformed reference list line: expected '<hex digest>  <path>' (the digest has 62 characters)",
        "ref.sha256sum:3:1: malformed reference list line: expected '<hex digest>  <path>'",
        "ref.sha256sum:4:1: malformed reference list line: 'zzzzzzzzzzzzzzzz'... is not a hex digest",
    ]


def test_keylime_policy_failing_the_schema_names_the_field(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "ima" / "keylime" / "runtime-policy-test.json"
    (tmp_path / "rp.json").write_bytes(src.read_bytes())
    with pytest.raises(PolicyError) as info:
        compile_policy_text('host h {\n    include keylime "rp.json"\n}\n', filename="p.policy", base_dir=tmp_path, sources=FILES)
    message = str(info.value)
    assert "Keylime runtime policy fails the schema at ['digests']['boot_aggregate'][0]" in message
    assert "'sha256:4309217e" in message and "does not match '^[0-9a-f]{40,128}$'" in message


def test_bad_regex_and_hash_algorithm() -> None:
    assert errors_of('host h {\n    exclude regex "([a-z"\n    hash_algorithm in {"sha265"}\n}\n') == [
        "p.policy:2:19: invalid regular expression '([a-z': unterminated character set at position 1",
        "p.policy:3:23: unknown hash algorithm 'sha265'",
    ]


def test_real_configs_compile(testdata: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "configs" / "policies"
    policy = load_policy(root / "floodlight.policy")
    assert sorted(policy.enclave_policies) == ["dpi_vnf", "firewall_vnf", "host_integrity"]
    assert policy.host_policies == ["container_host"]
    assert policy.host_integrity_enclave("container_host") == "host_integrity"
    rule = policy.enroll_rule("vnf-firewall-7")
    assert rule is not None
    assert (rule.name, rule.host_policy, rule.enclave_policy) == ("firewall", "container_host", "firewall_vnf")
    assert rule.profile.subject == "CN={vnf},O=floodlight-trust"
    assert rule.profile.validity_seconds == 3600
    assert rule.location.endswith("floodlight.policy:27")
    assert policy.enroll_rule("vnf-unknown") is None


def test_constants_hold_literals_not_claims() -> None:
    assert errors_of("const c = advisory_ids\n") == [
        "p.policy:1:11: a const holds literal values, not claim advisory_ids (list)"
    ]


def test_a_bad_duration_is_reported_where_it_is() -> None:
    # "30w" once lexed as 30 and a name 'w', reported on the next line as "unexpected 'svn'".
    lines = errors_of("enclave e {\n    max_collateral_age = 30w\n    svn: isv_svn >= 1\n}\n")
    assert lines == ["p.policy:2:26: '30w' is not a duration: the unit 'w' is not one of s, m, h, d"]
    assert errors_of("const c = 0xg1\n") == ["p.policy:1:11: '0xg1' is not a hex integer"]


def test_semantic_errors_are_reported_beside_syntax_errors() -> None:
    lines = errors_of(
        "const a = 1 1\n"  # syntax error
        "enclave e {\n"
        "    svn: isv_svn >= a\n"
        "    t: tcb_stat == UpToDate\n"  # semantic error, still found
        '    id: mrenclave == "ab"\n'  # semantic error, still found
        "}\n"
        'enroll r for "v" {\n'
        "    host = \n"  # syntax error: its 'host' is not reported missing again
        "    enclave = e\n"
        "}\n"
    )
    assert lines == [
        "p.policy:1:13: unexpected '1'; expected '&', ')', ',', ']', '}', a comparison, a name",
        "p.policy:4:8: unknown name 'tcb_stat'",
        "p.policy:5:22: 'ab' has 1 bytes; expected 32 bytes (64 hex digits)",
        "p.policy:8:10: nothing after '=': the expression is incomplete",
    ]
    assert not any("needs 'host" in line for line in lines)


CERTIFICATE_POLICY = 'host h {\n}\nenclave e {\n}\nenroll r for "v" {\n    host = h\n    enclave = e\n    certificate {\n        %s\n    }\n}\n'


@pytest.mark.parametrize(
    ("setting", "error", "hint"),
    [
        (
            'subject = "not an RFC4514 name"',
            "p.policy:9:19: subject 'not an RFC4514 name' is not an RFC 4514 name",
            'e.g. "CN={vnf},O=example"',
        ),
        (
            'subject = "CN={vnff},O=x"',
            "p.policy:9:19: subject: unknown placeholder {vnff} in 'CN={vnff},O=x'",
            "did you mean 'vnf'?",
        ),
        (
            'san_uri = ["urn:x:{hots}"]',
            "p.policy:9:19: san_uri: unknown placeholder {hots} in 'urn:x:{hots}'",
            "did you mean 'host'?",
        ),
        (
            'san_dns = ["{id}.vnf.local"]',
            "p.policy:9:19: san_dns: unknown placeholder {id} in '{id}.vnf.local'",
            "placeholders: {vnf}, {host}",
        ),
        (
            "validity = 0s",
            "p.policy:9:20: validity 0s issues certificates that are never valid",
            "give a positive duration such as 1h",
        ),
    ],
)
def test_certificate_settings_are_checked_before_any_vnf_enrolls(setting: str, error: str, hint: str) -> None:
    with pytest.raises(PolicyError) as info:
        compile_policy_text(CERTIFICATE_POLICY % setting, filename="p.policy")
    assert str(info.value) == error
    assert info.value.hint == hint


def test_a_valid_certificate_block_compiles_with_its_placeholders() -> None:
    policy = compile_policy_text(
        CERTIFICATE_POLICY
        % 'subject = "CN={vnf},OU={host},O=x"\n        san_dns = ["{vnf}.local"]\n        validity = 2h',
        filename="p.policy",
    )
    rule = policy.enroll_rule("v")
    assert rule is not None and rule.profile.validity_seconds == 7200
    assert rule.profile.render(vnf="vnf-1", host="h-1").subject == "CN=vnf-1,OU=h-1,O=x"
