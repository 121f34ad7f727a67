"""Bad numbers on the command line are refused with the argument named, never replaced by a default."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import ftrust, state_config

CLI_PASSWORDS = {"FTRUST_CA_PASSWORD": "cli password 1", "FTRUST_KEY_PASSWORD": "vnf key password"}


def test_ca_issue_validity_zero_is_refused(tmp_path: Path) -> None:
    assert ftrust("ca", "init", config=state_config(tmp_path), env=CLI_PASSWORDS).returncode == 0
    for bad, why in (
        ("0", "must be at least 1, not 0"),
        ("-5", "must be at least 1, not -5"),
        ("1h", "not a whole number"),
    ):
        r = ftrust("ca", "issue", "--subject", "CN=v", "--generate-key", str(tmp_path / "k.pem"),
                   "--validity", bad, config=state_config(tmp_path), env=CLI_PASSWORDS)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert f"argument --validity: {why}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "k.pem").exists()
    listing = ftrust("ca", "list", "--json", config=state_config(tmp_path), env=CLI_PASSWORDS)
    assert json.loads(listing.stdout) in ([], {"certificates": []}) or "CN=v" not in listing.stdout
    ok = ftrust("ca", "issue", "--subject", "CN=v", "--generate-key", str(tmp_path / "k.pem"),
                "--validity", "60", "--json", config=state_config(tmp_path), env=CLI_PASSWORDS)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["not_after"] != doc["not_before"]


def test_https_port_out_of_range_is_refused(tmp_path: Path) -> None:
    r = ftrust("floodlight", "provision", "--https-port", "70000", config=state_config(tmp_path), env=CLI_PASSWORDS)
    assert r.returncode == 2 and "argument --https-port: port must be 1-65535, not 70000" in r.stderr
