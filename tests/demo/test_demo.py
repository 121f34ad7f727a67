"""`ftrust demo` runs end to end (real processes, the JDK's TLS stack) and every step behaves as stated."""

from __future__ import annotations

from typing import Any

import pytest

from floodlight_trust.agent.swtpm import available as swtpm_available
from floodlight_trust.agent.tpm import tools_available
from tests.support.cli import ftrust, json_transcript

STEPS = [
    "provision",
    "controller",
    "services",
    "host-attested",
    "vnf-a-enrolled",
    "vnf-a-call",
    "plugin-controller",
    "grants",
    "vnf-b-refused",
    "no-certificate-refused",
    "host-compromised",
    "plugin-revoked",
    "vnf-a-refused",
    "ca-rotated",
]
# With swtpm installed (make setup installs it) the demo ends with the TPM anchoring step.
TPM_STEP = "tpm-exposes-rewrite"
if swtpm_available() and tools_available():
    STEPS.append(TPM_STEP)


@pytest.fixture(scope="module")
def transcript() -> dict[str, Any]:
    r = ftrust("demo", "--json", timeout=600)
    doc = json_transcript(r.stdout, r.stderr, r.returncode)
    doc["_exit"] = r.returncode
    doc["_stderr"] = r.stderr
    return doc


def step(doc: dict[str, Any], key: str) -> dict[str, Any]:
    found = [s for s in doc["steps"] if s["step"] == key]
    assert found, f"step {key} did not run; transcript: {[s['step'] for s in doc['steps']]}"
    s: dict[str, Any] = found[0]
    assert s["ok"], f"{key}: {s['observed']}"
    return s


def test_demo_exits_0_and_runs_every_step_in_order(transcript: dict[str, Any]) -> None:
    assert [s["step"] for s in transcript["steps"]] == STEPS, transcript["steps"][-1]
    assert all(s["ok"] for s in transcript["steps"])
    assert transcript["ok"] is True
    assert transcript["_exit"] == 0, transcript["_stderr"][-2000:]
    assert transcript["directory"] is None  # the temporary directory was removed


def test_host_attested_with_every_ima_entry(transcript: dict[str, Any]) -> None:
    s = step(transcript, "host-attested")
    assert s["details"]["trusted"] is True
    assert s["details"]["ima_entries"] == 29  # configs/demo/host-ima.log
    assert s["details"]["simulated"] is True


def test_vnf_a_enrolled_and_accepted_by_the_controller(transcript: dict[str, Any]) -> None:
    enrolled = step(transcript, "vnf-a-enrolled")
    assert enrolled["details"]["allowed"] is True
    call = step(transcript, "vnf-a-call")
    assert call["details"]["status"] == 200
    assert call["details"]["serial"] == enrolled["details"]["serial"]  # the call used its own certificate
    assert isinstance(call["details"]["body"], list)  # the switches JSON


def test_vnf_b_refused_for_its_mrenclave(transcript: dict[str, Any]) -> None:
    s = step(transcript, "vnf-b-refused")
    assert s["details"]["allowed"] is False
    assert "serial" not in s["details"]
    assert any("mrenclave is " in r["message"] for r in s["details"]["reasons"])


def test_no_certificate_refused_by_the_controller(transcript: dict[str, Any]) -> None:
    s = step(transcript, "no-certificate-refused")
    assert s["details"]["accepted"] is False
    assert s["details"]["refused"] is True


def test_unknown_binary_revokes_vnf_a(transcript: dict[str, Any]) -> None:
    s = step(transcript, "host-compromised")
    assert s["details"]["enrollment"]["status"] == "revoked"
    assert s["details"]["host"]["status"] != "trusted"
    assert "/usr/local/bin/xmrig" in s["observed"]


def test_revoked_vnf_a_refused_within_the_bound(transcript: dict[str, Any]) -> None:
    from floodlight_trust.floodlight.bridge import ocsp_revocation_bound_seconds

    s = step(transcript, "vnf-a-refused")
    assert s["details"]["last_call"]["revoked"] is True  # the enclave's typed RevokedError
    assert "revoked by the Verification Manager" in s["details"]["last_call"]["message"]
    assert s["details"]["revocation"] == "ocsp"
    assert s["details"]["delay_seconds"] <= ocsp_revocation_bound_seconds()


def test_plugin_chapter_grants_revocation_and_rotation(transcript: dict[str, Any]) -> None:
    started = step(transcript, "plugin-controller")
    assert started["details"]["url"].startswith("https://")
    grants = step(transcript, "grants")
    assert grants["details"]["vnf-mon"] == 403 and grants["details"]["vnf-flow"] == 200
    assert grants["details"]["resumed_before_revocation"] is True
    revoked = step(transcript, "plugin-revoked")
    assert revoked["details"]["keep_alive_refused_after_seconds"] is not None
    assert revoked["details"]["resumed_refused_after_seconds"] is not None
    assert revoked["details"]["resumed_again"] is False
    rotated = step(transcript, "ca-rotated")
    assert rotated["details"]["before"] != 200 and rotated["details"]["after"] == 200
    assert rotated["details"]["pid"] == started["details"]["pid"] is not None  # never restarted


def test_tpm_quote_exposes_the_rewritten_ima_list(transcript: dict[str, Any]) -> None:
    from tests.support.tpm import require_swtpm

    require_swtpm()
    s = step(transcript, TPM_STEP)
    d = s["details"]
    assert d["exposed"] is True and d["tpm"] == "SIMULATED (swtpm)"
    assert d["pcr10_sha256_quoted"] == d["pcr10_sha256_honest_list"] != d["pcr10_sha256_rewritten_list"]
    assert f"first differing entry: entry {d['hidden_entry']}" in s["observed"]
    assert "every template hash recomputes" in s["observed"]
