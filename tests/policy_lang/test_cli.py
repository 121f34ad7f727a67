"""`ftrust policy ...` through a real process: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "policies"
POLICY = str(CONFIGS / "floodlight.policy")
FIXTURES = CONFIGS / "tests" / "fixtures"


def ftrust(*argv: str, cwd: Path = REPO, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floodlight_trust", "policy", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin if stdin is not None else "",
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # this tree's code, from any working directory
    )


def test_check_ok() -> None:
    r = ftrust("check", POLICY)
    assert r.returncode == 0, r.stderr
    assert "1 host, 3 enclave policies, 2 enroll rules" in r.stdout


def test_check_reports_every_error_with_source_and_caret(tmp_path: Path) -> None:
    (tmp_path / "bad.policy").write_text('enclave e {\n    id: mrenclave in {"abcd"}\n    x: tcb_stat == UpToDate\n}\n')
    r = ftrust("check", "bad.policy", cwd=tmp_path)
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
    r = ftrust("check", "typos.policy", cwd=tmp_path)
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
    r = ftrust("eval", str(tmp_path / "missing.policy"), "--claims", "x.json")
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {tmp_path / 'missing.policy'}: policy file not found\n"
    assert "Traceback" not in r.stderr


def test_eval_allowed_and_denied() -> None:
    r = ftrust("eval", POLICY, "--claims", str(FIXTURES / "vnf-firewall-phala.json"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("allowed: firewall_vnf")
    r = ftrust("eval", POLICY, "--claims", str(FIXTURES / "vnf-occlum-debug.json"), "--enclave", "firewall_vnf")
    assert r.returncode == 1
    assert "debug: debug enclave refused" in r.stdout
    assert "identity: mrenclave is 8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68" in r.stdout


def test_eval_json_and_explain(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "host-clean.json").read_text())
    doc["ima"]["entries"].append({"path": "/usr/bin/xyz", "digest": "ab" * 32})
    (tmp_path / "claims.json").write_text(json.dumps(doc))
    r = ftrust("eval", POLICY, "--claims", str(tmp_path / "claims.json"), "--host", "container_host", "--json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["allowed"] is False and data["policy"] == "container_host"
    assert data["reasons"][0]["message"] == f"unknown file /usr/bin/xyz (sha256:{'ab' * 32}) is not in the allowlist"
    r = ftrust("eval", POLICY, "--claims", str(tmp_path / "claims.json"), "--host", "container_host", "--explain")
    assert '"path": "/usr/bin/xyz"' in r.stdout


def test_eval_bad_claims_is_located(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"verified_at": "2025-01-01T00:00:00Z",\n "enclave": {')
    r = ftrust("eval", POLICY, "--claims", str(tmp_path / "c.json"))
    assert r.returncode == 2
    assert r.stderr.startswith(f"ftrust: error: {tmp_path / 'c.json'}:2:")


def test_fmt_check_diff_and_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "p.policy"
    f.write_text("const   x=1\n")
    r = ftrust("fmt", "--check", str(f))
    assert r.returncode == 1 and r.stdout == f"would reformat {f}\n"
    r = ftrust("fmt", "--diff", str(f))  # a difference is a failure, as `opa fmt --fail` says
    assert r.returncode == 1 and "-const   x=1\n+const x = 1\n" in r.stdout
    r = ftrust("fmt", "--check", "--diff", str(f))  # both: the file named and the diff, exit 1
    assert r.returncode == 1
    assert r.stdout.startswith(f"would reformat {f}\n--- {f}\n") and "+const x = 1\n" in r.stdout
    assert f.read_text() == "const   x=1\n"
    r = ftrust("fmt", str(f))
    assert r.returncode == 0 and f.read_text() == "const x = 1\n"
    assert ftrust("fmt", "--check", str(f)).returncode == 0
    f.write_text("const x = \n")
    r = ftrust("fmt", str(f))
    assert r.returncode == 2 and r.stderr.startswith(f"ftrust: error: {f}:2:1: unexpected end of file")


def test_directories_and_stdin_wherever_a_policy_is_named(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.policy").write_text('import "sub/b.policy"\nconst x = 1\n')
    (tmp_path / "sub" / "b.policy").write_text("const  y=2\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    r = ftrust("check", ".", cwd=tmp_path)  # recursively, *.policy only, each file with its imports
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[1].strip() for line in r.stdout.splitlines()] == ["a.policy", "sub/b.policy"]
    r = ftrust("fmt", "--check", ".", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (1, "would reformat sub/b.policy\n")
    assert ftrust("fmt", ".", cwd=tmp_path).returncode == 0
    assert (tmp_path / "sub" / "b.policy").read_text() == "const y = 2\n"
    assert ftrust("fmt", "--check", str(tmp_path)).returncode == 0
    # '-': standard input, imports relative to the working directory; fmt is then a filter.
    r = ftrust("check", "-", cwd=tmp_path, stdin='import "a.policy"\nconst z = x\n')
    assert r.returncode == 0 and r.stdout.startswith("ok: <stdin>: "), r.stderr
    r = ftrust("check", "-", cwd=tmp_path, stdin="const = 1\n")
    assert r.returncode == 2 and r.stderr.startswith("<stdin>:1:7: unexpected '='")
    r = ftrust("fmt", "-", stdin="const   x=1\n")
    assert (r.returncode, r.stdout) == (0, "const x = 1\n")
    r = ftrust("fmt", "--diff", "-", stdin="const   x=1\n")
    assert r.returncode == 1 and "--- <stdin>\n" in r.stdout
    r = ftrust("check", "-", "-", stdin="")
    assert r.returncode == 2 and "only once" in r.stderr
    (tmp_path / "empty").mkdir()
    r = ftrust("check", "empty", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "ftrust: error: empty: no *.policy files in this directory\n"


def test_test_command_summary_and_coverage() -> None:
    r = ftrust("test", str(CONFIGS), "--coverage")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert lines[-1].endswith(" passed, 0 failed")
    assert "rules no case saw deny:" in lines


def test_test_command_without_cases(tmp_path: Path) -> None:
    r = ftrust("test", str(tmp_path))
    assert r.returncode == 2 and "no policy test cases found" in r.stderr


def test_generate_needs_a_readable_log(tmp_path: Path) -> None:
    r = ftrust("generate", "--ima-log", str(tmp_path / "nope.log"))
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {tmp_path / 'nope.log'}: IMA measurement list not found\n"


def test_generate_from_a_real_log(testdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.sha256sum"
    r = ftrust("generate", "--ima-log", str(testdata / "ima" / "ibmtss" / "sha256.log"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines and all(len(line.split("  ", 1)[0]) in (40, 64) for line in lines)
    (tmp_path / "p.policy").write_text('host h {\n    include sha256sum "ref.sha256sum"\n}\n')
    assert ftrust("check", str(tmp_path / "p.policy")).returncode == 0
