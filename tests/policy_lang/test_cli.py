"""`ftrust policy ...` through a real process: exit codes, messages, no tracebacks."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from tests.support.cli import ftrust

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "policies"
POLICY = str(CONFIGS / "floodlight.policy")
FIXTURES = CONFIGS / "tests" / "fixtures"


def test_check_ok() -> None:
    r = ftrust("policy", "check", POLICY)
    assert r.returncode == 0, r.stderr
    assert "1 host, 3 enclave policies, 2 enroll rules" in r.stdout


def test_check_reports_every_error_with_source_and_caret(tmp_path: Path) -> None:
    (tmp_path / "bad.policy").write_text('enclave e {\n    id: mrenclave in {"abcd"}\n    x: tcb_stat == UpToDate\n}\n')
    r = ftrust("policy", "check", "bad.policy", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.split("\n") == [
        "bad.policy:2:23: 'abcd' has 2 bytes; expected 32 bytes (64 hex digits)",
        '        id: mrenclave in {"abcd"}',
        "                          ^",
        "bad.policy:3:8: unknown name 'tcb_stat'",
        "        x: tcb_stat == UpToDate",
        "           ^",
        "    hint: did you mean 'tcb_status'?",
        "bad.policy: 2 errors",
        "",
    ]


def test_check_reports_every_syntax_error_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "typos.policy").write_text(
        'host h {\n    exclde "/tmp/**"\n    require measured "/usr/bin/containerd"\n}\n\n'
        "enclave e {\n    svn: isv_svn >=\n    evidence: evidence_type == DCAP\n}\n\n"
        'enrol vnf for "vnf-*" {\n    host = h\n}\n'
    )
    r = ftrust("policy", "check", "typos.policy", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.split("\n") == [
        "typos.policy:2:12: unexpected '\"/tmp/**\"'; expected '='",
        '        exclde "/tmp/**"',
        "               ^",
        "    hint: did you mean 'exclude'?",
        "typos.policy:7:18: nothing after '>=': the expression is incomplete",
        "        svn: isv_svn >=",
        "                     ^",
        "typos.policy:11:1: unexpected 'enrol'; expected 'const', 'enclave', 'enroll', 'host', 'import', 'key', "
        "'rule', 'set'",
        '    enrol vnf for "vnf-*" {',
        "    ^",
        "    hint: did you mean 'enroll'?",
        "typos.policy: 3 errors",
        "",
    ]


def test_user_error_is_one_line_exit_2(tmp_path: Path) -> None:
    r = ftrust("policy", "eval", str(tmp_path / "missing.policy"), "--claims", "x.json")
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {tmp_path / 'missing.policy'}: policy file not found\n"
    assert "Traceback" not in r.stderr


def test_eval_allowed_and_denied() -> None:
    r = ftrust("policy", "eval", POLICY, "--claims", str(FIXTURES / "vnf-firewall-phala.json"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == [
        "allowed: enroll firewall for vnf-firewall-1",
        r.stdout.splitlines()[1],
        r.stdout.splitlines()[2],
    ]
    assert r.stdout.splitlines()[1].startswith("allowed: host container_host")
    assert r.stdout.splitlines()[2].startswith("allowed: enclave firewall_vnf")
    r = ftrust(
        "policy", "eval", POLICY, "--claims", str(FIXTURES / "vnf-occlum-debug.json"), "--enclave", "firewall_vnf"
    )
    assert r.returncode == 1
    assert "debug: debug enclave refused" in r.stdout
    assert "identity: mrenclave is 8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68" in r.stdout


def test_an_enroll_decision_without_host_evidence_is_an_error(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "vnf-firewall-phala.json").read_text())
    del doc["ima"]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    r = ftrust("policy", "eval", POLICY, "--claims", str(tmp_path / "c.json"), "--vnf", "vnf-firewall-1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("ftrust: error: enroll rule firewall (")
    assert r.stderr.rstrip().endswith(
        "judges the host and the enclave: missing host evidence (an IMA measurement list) for host policy container_host"
    )


EVAL_KEYS = ["allowed", "target", "enroll_rule", "policy_version", "decisions"]
DECISION_KEYS = ["kind", "allowed", "policy", "policy_version", "reasons", "trace"]


def test_eval_json_has_one_shape_for_every_target_and_explain_traces_allowed_decisions(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "host-clean.json").read_text())
    doc["ima"]["entries"].append({"path": "/usr/bin/xyz", "digest": "ab" * 32})
    (tmp_path / "claims.json").write_text(json.dumps(doc))
    r = ftrust(
        "policy", "eval", POLICY, "--claims", str(tmp_path / "claims.json"), "--host", "container_host", "--json"
    )
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert list(data) == EVAL_KEYS and [list(d) for d in data["decisions"]] == [DECISION_KEYS]
    assert data["allowed"] is False and data["target"] == {"kind": "host", "name": "container_host"}
    (host,) = data["decisions"]
    assert host["policy"] == "container_host" and host["trace"] == []
    assert host["reasons"][0]["message"] == f"unknown file /usr/bin/xyz (sha256:{'ab' * 32}) is not in the allowlist"
    r = ftrust(
        "policy", "eval", POLICY, "--claims", str(tmp_path / "claims.json"), "--host", "container_host", "--explain"
    )
    assert '"path": "/usr/bin/xyz"' in r.stdout
    # The same shape for an enroll decision (two decisions) and an enclave; --explain fills "trace".
    r = ftrust("policy", "eval", POLICY, "--claims", str(FIXTURES / "vnf-firewall-phala.json"), "--json", "--explain")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert list(data) == EVAL_KEYS and [list(d) for d in data["decisions"]] == [DECISION_KEYS] * 2
    assert data["enroll_rule"] == "firewall" and [d["kind"] for d in data["decisions"]] == ["host", "enclave"]
    enclave_trace = {s["rule"]: s for s in data["decisions"][1]["trace"]}
    assert enclave_trace["identity"]["outcome"] == "pass"
    assert (
        "mrenclave = 33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
        in enclave_trace["identity"]["detail"]
    )
    host_trace = {s["rule"]: s for s in data["decisions"][0]["trace"]}
    assert (
        host_trace["allowlist"]["outcome"] == "pass"
        and "23 entries: 21 on the allowlist with their digest, 0 by 'allow any digest', 2 excluded"
        in host_trace["allowlist"]["detail"]
    )
    # An allowed decision explained in text: every rule evaluated, what it matched.
    r = ftrust("policy", "eval", POLICY, "--claims", str(FIXTURES / "vnf-firewall-phala.json"), "--explain")
    assert r.returncode == 0
    assert (
        "  pass  " in r.stdout and ": identity: mrenclave in firewall_builds and mrsigner in vnf_signers (" in r.stdout
    )
    assert ": tcb: acceptable_tcb (tcb_status = ConfigurationAndSWHardeningNeeded)" in r.stdout
    r = ftrust(
        "policy",
        "eval",
        POLICY,
        "--claims",
        str(FIXTURES / "vnf-firewall-phala.json"),
        "--enclave",
        "firewall_vnf",
        "--json",
    )
    data = json.loads(r.stdout)
    assert (
        list(data) == EVAL_KEYS
        and data["enroll_rule"] is None
        and [d["kind"] for d in data["decisions"]] == ["enclave"]
    )


def test_eval_judges_evidence_directly(tmp_path: Path) -> None:
    """--ima-log / --quote + --collateral: verified as the VM verifies them (evidence/verify.py),
    no claims JSON round trip; the quote's time window is the collateral's."""
    phala = FIXTURES / "sgx-dcap" / "phala"
    quote = ["--quote", str(phala / "sgx_quote"), "--collateral", str(phala / "sgx_quote_collateral.json")]
    r = ftrust("policy", "eval", POLICY, *quote, "--at", "2025-06-20T00:00:00Z", "--enclave", "firewall_vnf", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["allowed"] is True
    r = ftrust("policy", "eval", POLICY, *quote, "--at", "2025-08-01T00:00:00Z", "--enclave", "firewall_vnf")
    assert r.returncode == 1 and "TCB info expired at 2025-07-19T10:56:11Z" in r.stderr
    # Host evidence from the claims document, the enclave from the quote: an enroll decision.
    host = ["--claims", str(FIXTURES / "host-clean.json"), "--at", "2025-06-20T00:00:00Z"]
    r = ftrust("policy", "eval", POLICY, *host, *quote, "--vnf", "vnf-firewall-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("allowed: enroll firewall for vnf-firewall-1")
    vtpm = str(CONFIGS / "tests" / "vtpm-host.policy")
    log = str(FIXTURES / "ima" / "ibmtss-sha256-head.log")
    r = ftrust("policy", "eval", vtpm, "--ima-log", log, "--host", "vtpm_host", "--explain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("allowed: host vtpm_host") and "135 entries" in r.stdout
    r = ftrust("policy", "eval", vtpm, "--quote", str(phala / "sgx_quote"), "--host", "vtpm_host")
    assert r.returncode == 2 and r.stderr == "ftrust: error: --quote needs --collateral FILE|DIR\n"


def test_eval_bad_claims_is_located(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"verified_at": "2025-01-01T00:00:00Z",\n "enclave": {')
    r = ftrust("policy", "eval", POLICY, "--claims", str(tmp_path / "c.json"))
    assert r.returncode == 2
    assert r.stderr.startswith(f"ftrust: error: {tmp_path / 'c.json'}:2:")


def test_fmt_check_diff_and_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "p.policy"
    f.write_text("const   x=1\n")
    r = ftrust("policy", "fmt", "--check", str(f))
    assert r.returncode == 1 and r.stdout == f"would reformat {f}\n"
    r = ftrust("policy", "fmt", "--diff", str(f))  # a difference is a failure, as `opa fmt --fail` says
    assert r.returncode == 1 and "-const   x=1\n+const x = 1\n" in r.stdout
    r = ftrust("policy", "fmt", "--check", "--diff", str(f))  # both: the file named and the diff, exit 1
    assert r.returncode == 1
    assert r.stdout.startswith(f"would reformat {f}\n--- {f}\n") and "+const x = 1\n" in r.stdout
    assert f.read_text() == "const   x=1\n"
    r = ftrust("policy", "fmt", str(f))
    assert r.returncode == 0 and f.read_text() == "const x = 1\n"
    assert ftrust("policy", "fmt", "--check", str(f)).returncode == 0
    f.write_text("const x = \n")
    r = ftrust("policy", "fmt", str(f))
    assert r.returncode == 2 and r.stderr.startswith(f"ftrust: error: {f}:2:1: unexpected end of file")


def test_directories_and_stdin_wherever_a_policy_is_named(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.policy").write_text('import "sub/b.policy"\nconst x = 1\n')
    (tmp_path / "sub" / "b.policy").write_text("const  y=2\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    r = ftrust("policy", "check", ".", cwd=tmp_path)  # recursively, *.policy only, each file with its imports
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[1].strip() for line in r.stdout.splitlines()] == ["a.policy", "sub/b.policy"]
    r = ftrust("policy", "fmt", "--check", ".", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (1, "would reformat sub/b.policy\n")
    assert ftrust("policy", "fmt", ".", cwd=tmp_path).returncode == 0
    assert (tmp_path / "sub" / "b.policy").read_text() == "const y = 2\n"
    assert ftrust("policy", "fmt", "--check", str(tmp_path)).returncode == 0
    # '-': standard input, imports relative to the working directory; fmt is then a filter.
    r = ftrust("policy", "check", "-", cwd=tmp_path, stdin='import "a.policy"\nconst z = x\n')
    assert r.returncode == 0 and r.stdout.startswith("ok: <stdin>: "), r.stderr
    r = ftrust("policy", "check", "-", cwd=tmp_path, stdin="const = 1\n")
    assert r.returncode == 2 and r.stderr.startswith("<stdin>:1:7: unexpected '='")
    r = ftrust("policy", "fmt", "-", stdin="const   x=1\n")
    assert (r.returncode, r.stdout) == (0, "const x = 1\n")
    r = ftrust("policy", "fmt", "--diff", "-", stdin="const   x=1\n")
    assert r.returncode == 1 and "--- <stdin>\n" in r.stdout
    r = ftrust("policy", "check", "-", "-", stdin="")
    assert r.returncode == 2 and "only once" in r.stderr
    (tmp_path / "empty").mkdir()
    r = ftrust("policy", "check", "empty", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "ftrust: error: empty: no *.policy files in this directory\n"


def test_test_command_summary_and_coverage() -> None:
    r = ftrust("policy", "test", str(CONFIGS), "--coverage")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert lines[-1].endswith(" passed, 0 failed")
    assert "rules no case saw deny:" in lines


def test_test_command_without_cases(tmp_path: Path) -> None:
    r = ftrust("policy", "test", str(tmp_path))
    assert r.returncode == 2 and "no policy test cases found" in r.stderr


def test_generate_needs_a_readable_log(tmp_path: Path) -> None:
    r = ftrust("policy", "generate", "--ima-log", str(tmp_path / "nope.log"))
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {tmp_path / 'nope.log'}: IMA measurement list not found\n"


def test_generate_from_a_real_log(testdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.sha256sum"
    r = ftrust("policy", "generate", "--ima-log", str(testdata / "ima" / "ibmtss" / "sha256.log"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines and all(len(line.split("  ", 1)[0]) in (40, 64) for line in lines)
    (tmp_path / "p.policy").write_text(
        'host h {\n    include sha256sum "ref.sha256sum"\n    integrity_enclave = ie\n}\n'
        f'enclave ie {{\n    identity: mrenclave in {{"{"ab" * 32}"}}\n}}\n'
    )
    r = ftrust("policy", "check", str(tmp_path / "p.policy"))
    assert r.returncode == 0, r.stderr


def test_keylime_schema_failure_shows_the_field_path_and_a_short_excerpt(testdata: Path, tmp_path: Path) -> None:
    doc = json.loads((testdata / "ima/keylime/runtime-policy-test.json").read_text())
    doc["digests"]["boot_aggregate"] = ["ab" * 32]
    doc["ima"]["log_hash_alg"] = "sha257"
    minified = json.dumps(doc, separators=(",", ":"))
    assert len(minified) > 1500  # one long line, as keylime-policy writes it
    (tmp_path / "rp.json").write_text(minified)
    (tmp_path / "p.policy").write_text('host h {\n    include keylime "rp.json"\n}\n')
    r = ftrust("policy", "check", "p.policy", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("rp.json:1:") and "fails the schema at ['ima']['log_hash_alg']" in lines[0]
    assert "'sha257' is not one of" in lines[0]
    excerpt, caret = lines[1], lines[2]
    assert len(excerpt) < 110 and excerpt.startswith("    …") and '"sha257"' in excerpt
    assert excerpt[len(caret) - 1 :].startswith('"sha257"')  # the caret points at the value


def test_generate_keylime_runtime_policy_plain_and_dsse_signed(testdata: Path, tmp_path: Path) -> None:
    """`generate --format keylime` writes a runtime policy Keylime's schema accepts and the host
    policy includes; with --sign-key, a DSSE envelope that `include keylime ... verify_with` verifies
    (and refuses once changed). The real list passes the policy made from it, via eval --ima-log."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    log = str(testdata / "ima" / "ibmtss" / "sha1.log")
    r = ftrust("policy", "generate", "--ima-log", log, "--format", "keylime", "-o", str(tmp_path / "rp.json"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("wrote a Keylime runtime policy of ") and r.stderr.rstrip().endswith(
        f"{tmp_path / 'rp.json'}"
    )
    doc = json.loads((tmp_path / "rp.json").read_text())
    assert doc["ima"] == {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None}
    assert doc["verification-keys"] == "" and "boot_aggregate" in doc["digests"]
    assert ftrust("policy", "generate", "--ima-log", log, "--format",
                  "keylime").stdout == (tmp_path / "rp.json").read_text()  # fmt: skip
    (tmp_path / "p.policy").write_text('host h {\n    include keylime "rp.json"\n}\n')
    r = ftrust("policy", "eval", "p.policy", "--ima-log", log, "--host", "h", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "sign.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "sign.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = ftrust(
        "policy",
        "generate",
        "--ima-log",
        log,
        "--format",
        "keylime",
        "--sign-key",
        "sign.pem",
        "-o",
        "rp.signed.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "DSSE-signed" in r.stderr, r.stderr
    envelope = json.loads((tmp_path / "rp.signed.json").read_text())
    assert envelope["payloadType"] == "application/vnd.keylime+json"
    (tmp_path / "s.policy").write_text('host h {\n    include keylime "rp.signed.json" verify_with "sign.pub"\n}\n')
    r = ftrust("policy", "eval", "s.policy", "--ima-log", log, "--host", "h", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["digests"]["/usr/bin/evil"] = ["ab" * 32]
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (tmp_path / "rp.signed.json").write_text(json.dumps(envelope))
    r = ftrust("policy", "check", "s.policy", cwd=tmp_path)
    assert r.returncode == 2 and "rp.signed.json: DSSE signature does not verify with the key in sign.pub" in r.stderr
    r = ftrust("policy", "generate", "--ima-log", log, "--sign-key", "sign.pem", cwd=tmp_path)
    assert r.returncode == 2 and "add --format keylime" in r.stderr


def test_eval_keyring_checks_ima_sig_signatures(testdata: Path, tmp_path: Path) -> None:
    """`eval --ima-log LOG --keyring KEY`: signatures are checked with the keyring's keys (the
    same loader as `ima verify --keyring`), so `require signature` passes only with the right key;
    a keyring file that holds no key is a located error, exit 2."""
    from floodlight_trust.evidence.ima import appraise_measurement_list

    keylime = testdata / "ima-sig" / "keylime"
    log = keylime / "b71f6ebf-SIGNATURES-sha1.DERIVED.txt"
    digests = ", ".join(sorted(f'"{d}"' for d in set(appraise_measurement_list(log.read_bytes()).claims.digests)))
    (tmp_path / "sig.policy").write_text(
        f'key rsa = "f3452d23"\nhost h {{\n    allow any digest in {{{digests}}}\n'
        '    require signature "/usr/bin/dd" by rsa\n}\n'
    )

    def evaluate(*keyring: Path) -> subprocess.CompletedProcess[str]:
        ring = [a for k in keyring for a in ("--keyring", str(k))]
        return ftrust("policy", "eval", "sig.policy", "--ima-log", log, *ring, "--host", "h", "--json", cwd=tmp_path)

    r = evaluate(keylime / "rsa2048pub.pem")
    assert r.returncode == 0 and json.loads(r.stdout)["allowed"] is True, r.stdout + r.stderr
    for keyring, status in (((), "unchecked"), ((keylime / "secp256k1-pub.DERIVED.pem",), "unknown-key")):
        r = evaluate(*keyring)
        assert r.returncode == 1, r.stdout + r.stderr
        (reason,) = json.loads(r.stdout)["decisions"][0]["reasons"]
        assert reason["rule"] == "require_signature" and reason["evidence"]["signature"] == status, reason
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    r = evaluate(keylime / "rsa2048pub.pem", bad)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert f"{bad}: keyring file is not a certificate or public key" in r.stderr and "Traceback" not in r.stderr
