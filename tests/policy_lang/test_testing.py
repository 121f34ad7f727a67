"""Policy test files: ftrust's runner and the pytest plugin see the same cases."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from policy_lang.testing import format_report, run_tests

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
    assert "1 failed, 18 passed" in r.stdout
    assert "expected deny, got allow" in r.stdout
