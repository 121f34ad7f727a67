"""Bad numbers on the command line are refused with the argument named, never replaced by a default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ftrust(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    return subprocess.run(
        [sys.executable, "-m", "floodlight_trust", "--config", str(cfg), *argv],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env=dict(os.environ, FTRUST_CA_PASSWORD="cli password 1", FTRUST_KEY_PASSWORD="vnf key password"),
    )  # fmt: skip


def test_ca_issue_validity_zero_is_refused(tmp_path: Path) -> None:
    assert ftrust(tmp_path, "ca", "init").returncode == 0
    for bad, why in (
        ("0", "must be at least 1, not 0"),
        ("-5", "must be at least 1, not -5"),
        ("1h", "not a whole number"),
    ):
        r = ftrust(tmp_path, "ca", "issue", "--subject", "CN=v", "--generate-key", str(tmp_path / "k.pem"),
                   "--validity", bad)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert f"argument --validity: {why}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "k.pem").exists()
    listing = ftrust(tmp_path, "ca", "list", "--json")
    assert json.loads(listing.stdout) in ([], {"certificates": []}) or "CN=v" not in listing.stdout
    ok = ftrust(tmp_path, "ca", "issue", "--subject", "CN=v", "--generate-key", str(tmp_path / "k.pem"),
                "--validity", "60", "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["not_after"] != doc["not_before"]


def test_https_port_out_of_range_is_refused(tmp_path: Path) -> None:
    r = ftrust(tmp_path, "floodlight", "provision", "--https-port", "70000")
    assert r.returncode == 2 and "argument --https-port: port must be 1-65535, not 70000" in r.stderr
