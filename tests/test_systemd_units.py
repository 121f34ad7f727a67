"""The systemd units (configs/systemd/): Type=notify, and hardened to "OK" in systemd-analyze security.

`vm serve` and `agent serve` send READY=1 once their listeners answer (tests/manager/
test_serve_lifecycle.py); here the units must ask for that, and their exposure score must stay
below 4.0 (it was 7.7 for the VM and 8.9 for the agent, "EXPOSED").
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parent.parent / "configs" / "systemd").glob("*.service"))


def directives(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_wait_for_readiness_and_restart_on_failure(unit: Path) -> None:
    d = directives(unit)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"]
    assert d["NoNewPrivileges"] == ["yes"] and d["ProtectSystem"] == ["strict"]
    assert all(not v or v == "CAP_DAC_READ_SEARCH" for v in d["CapabilityBoundingSet"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed: score not measured")
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exposure_score_is_ok(unit: Path) -> None:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout + r.stderr)
    assert m, r.stdout[-500:] + r.stderr[-500:]
    score, verdict = float(m.group(1)), m.group(2)
    print(f"{unit.name}: {score} {verdict}")
    assert score < 4.0 and verdict == "OK", (score, verdict)
