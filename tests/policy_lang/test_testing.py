"""Policy test files: ftrust's runner and the pytest plugin see the same cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policy_lang.testing import format_report, run_tests
from tests.support.cli import ftrust

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "policies"


def test_shipped_policy_tests_pass() -> None:
    report = run_tests([CONFIGS])
    assert report.failed == 0 and report.passed >= 15
    assert format_report(report).endswith(f"{report.passed} passed, 0 failed")


def _broken_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "policies"
    shutil.copytree(CONFIGS, dst)
    test = dst / "tests" / "floodlight.policytest.toml"
    text = test.read_text().replace(
        'name = "a clean container host is trusted"\nhost = "container_host"\nclaims = "fixtures/host-clean.json"\nexpect = "allow"',
        'name = "a clean container host is trusted"\nhost = "container_host"\nclaims = "fixtures/host-clean.json"\nexpect = "deny"\nreasons = ["nothing"]',
    )
    test.write_text(text)
    return dst


def test_failing_case_is_reported_with_actual_outcome(tmp_path: Path) -> None:
    report = run_tests([_broken_copy(tmp_path)])
    assert report.failed == 1
    text = format_report(report, coverage=True)
    assert "FAIL" in text and "a clean container host is trusted" in text
    assert "expected deny, got allow" in text and "expected a reason containing 'nothing'" in text
    assert "rules no case saw deny:" in text
    assert text.endswith(f"{report.passed} passed, 1 failed")


def test_pytest_plugin_collects_cases(tmp_path: Path) -> None:
    # The plugin is loaded through its pytest11 entry point (installed by `pip install -e .`).
    target = _broken_copy(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            "-p",
            "no:cacheprovider",
            str(target),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed, 29 passed" in r.stdout
    assert "expected deny, got allow" in r.stdout


def test_evidence_fixtures_are_verified_and_judged() -> None:
    report = run_tests(
        [CONFIGS / "tests" / "evidence.policytest.toml", CONFIGS / "tests" / "vtpm-host.policytest.toml"]
    )
    assert report.failed == 0 and report.passed == 11
    by_name = {r.case.name: r.decision for r in report.results}
    phala = by_name["the DPI policy refuses the phala enclave and its real advisory INTEL-SA-00289"]
    assert phala is not None and not phala.allowed
    occlum = by_name["the occlum debug quote does not verify with collateral for another PCK CA"]
    assert occlum is not None and [r.rule for r in occlum.failures] == ["evidence"]
    host = by_name["the reference vTPM host's real measurement list is trusted"]
    assert host is not None and host.allowed and host.policy == "vtpm_host"


def _evidence_case(tmp_path: Path, lines: str) -> Path:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(CONFIGS / "tests" / "fixtures" / "sgx-dcap" / "phala", fixtures)
    (tmp_path / "p.policy").write_text("enclave e {\n    svn: isv_svn >= 0\n}\n")
    test = tmp_path / "e.policytest.toml"
    test.write_text(f'policy = "p.policy"\n\n[[case]]\nname = "c"\nenclave = "e"\n{lines}expect = "allow"\n')
    return test


def test_errors_in_evidence_fixtures_are_located_in_the_test_file(tmp_path: Path) -> None:
    import pytest

    from floodlight_trust.errors import InputError
    from policy_lang.testing import load_test_file

    good = (
        'quote = "fixtures/sgx_quote"\ncollateral = "fixtures/sgx_quote_collateral.json"\nat = "2025-06-20T00:00:00Z"\n'
    )
    assert run_tests([_evidence_case(tmp_path / "ok", good)]).passed == 1

    missing = _evidence_case(tmp_path / "missing", good.replace('fixtures/sgx_quote"', 'fixtures/nope.dat"'))
    with pytest.raises(InputError) as info:
        load_test_file(missing)
    assert str(info.value.location) == f"{missing}:6:1"
    assert "nope.dat" in info.value.message

    (tmp_path / "bad").mkdir()
    bad = _evidence_case(tmp_path / "bad", good)
    (bad.parent / "fixtures" / "sgx_quote").write_bytes(b"\x03\x00" + b"\x00" * 40)
    with pytest.raises(InputError) as info:
        load_test_file(bad)
    assert str(info.value.location) == f"{bad}:6:1"
    assert info.value.message.startswith("quote fixtures/sgx_quote: ")

    no_time = _evidence_case(tmp_path / "no-time", good.replace('at = "2025-06-20T00:00:00Z"\n', ""))
    with pytest.raises(InputError, match="needs a verification time") as info:
        load_test_file(no_time)
    assert str(info.value.location) == f"{no_time}:3:1"  # the case, as `at` is absent


def test_ftrust_policy_test_with_a_missing_fixture_is_one_located_line(tmp_path: Path) -> None:
    test = _evidence_case(tmp_path, 'ima_log = "fixtures/host.log"\n')
    r = ftrust("policy", "test", str(test), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"ftrust: error: {test}:6:1: ima_log: ")
    assert r.stderr.count("\n") == 1


def test_pytest_plugin_as_documented_with_p(tmp_path: Path) -> None:
    """`pytest -p policy_lang.pytest_plugin` (the documented way, needed when entry points are not
    autoloaded) works both on top of the installed entry point and without it: one plugin, once."""
    (tmp_path / "p.policy").write_text("enclave e {\n    svn: isv_svn >= 1\n}\n")
    (tmp_path / "c.json").write_text((CONFIGS / "tests" / "fixtures" / "host-clean.json").read_text())
    (tmp_path / "e.policytest.toml").write_text(
        'policy = "p.policy"\n\n[[case]]\nname = "no enclave evidence is refused"\nenclave = "e"\n'
        'claims = "c.json"\nexpect = "deny"\nreasons = ["evidence: no enclave evidence"]\n'
    )
    command = [sys.executable, "-m", "pytest", "-q", "--rootdir", str(tmp_path), "-c", "/dev/null"]
    command += ["-p", "no:cacheprovider", "-p", "policy_lang.pytest_plugin", str(tmp_path)]
    for autoload in ("", "1"):
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
        if autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = autoload
        r = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 passed" in r.stdout and "already registered" not in r.stdout + r.stderr


def _test_file(tmp_path: Path, body: str) -> Path:
    (tmp_path / "p.policy").write_text(
        'host h {\n    exclude regex ".*"\n}\n'
        "enclave e {\n    svn: isv_svn >= 0\n}\n"
        'enroll r for "vnf-*" {\n    host = h\n    enclave = e\n}\n'
    )
    for name in ("host-clean.json", "vnf-firewall-phala.json"):
        shutil.copy(CONFIGS / "tests" / "fixtures" / name, tmp_path / name)
    target = tmp_path / "t.policytest.toml"
    target.write_text(body)
    return target


def _load_error(path: Path) -> tuple[str, str | None]:
    from floodlight_trust.errors import FtrustError
    from policy_lang.testing import load_test_file

    with pytest.raises(FtrustError) as info:
        load_test_file(path)
    return str(info.value), info.value.hint


def test_typos_in_test_files_are_errors_with_did_you_mean(tmp_path: Path) -> None:
    case = '[[case]]\nname = "c"\nenclave = "e"\nclaims = "vnf-firewall-phala.json"\nexpect = "allow"\n'
    f = _test_file(tmp_path, 'polcy = "p.policy"\n\n' + case)
    assert _load_error(f) == (f"{f}:1:1: unknown key 'polcy'", "did you mean 'policy'?")
    f = _test_file(tmp_path, 'policy = "p.policy"\n\n' + case.replace("expect =", "expcet ="))
    assert _load_error(f) == (f"{f}:7:1: case 1: unknown key 'expcet'", "did you mean 'expect'?")
    # A misspelt claim in `set` once set a field nobody reads, and the case passed.
    f = _test_file(tmp_path, 'policy = "p.policy"\n\n' + case + 'set = {"enclave.mrenclav" = "00"}\n')
    assert _load_error(f) == (
        f"{f}:8:1: set 'enclave.mrenclav': no claim field 'mrenclav' in enclave",
        "did you mean 'mrenclave'?",
    )
    f = _test_file(tmp_path, 'policy = "p.policy"\n\n' + case + 'set = {"enclave.platform.fmpsc" = "00"}\n')
    assert _load_error(f)[1] == "did you mean 'fmspc'?"
    f = _test_file(tmp_path, 'policy = "p.policy"\n\n' + case + 'add_ima = [{ path = "/x", digset = "00" }]\n')
    assert _load_error(f) == (f"{f}:8:1: case 1: add_ima: unknown entry field 'digset'", "did you mean 'digest'?")


def test_an_enroll_case_needs_host_and_enclave_evidence(tmp_path: Path) -> None:
    from policy_lang.testing import load_test_file, run_case

    body = (
        'policy = "p.policy"\n\n[[case]]\nname = "enclave only"\nvnf = "vnf-1"\nclaims = "vnf.json"\nexpect = "allow"\n'
    )
    f = _test_file(tmp_path, body)
    doc = json.loads((tmp_path / "vnf-firewall-phala.json").read_text())
    del doc["ima"]
    (tmp_path / "vnf.json").write_text(json.dumps(doc))
    message, _ = _load_error(f)
    assert message == (
        f"{f}:5:1: case 1: vnf = 'vnf-1' is an enroll decision, which judges the host and the enclave: "
        "no host evidence (ima_log, or claims with an ima part)"
    )
    (tmp_path / "vnf.json").write_text((tmp_path / "vnf-firewall-phala.json").read_text())  # host and enclave
    test = load_test_file(f)
    result = run_case(test, test.cases[0])
    assert result.passed, result.problems
    assert result.decision is not None and result.decision.policy == "enroll r"
