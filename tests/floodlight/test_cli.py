"""`ftrust floodlight`: provision a properties file and keystore, status as Java sees it, check a URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from floodlight_trust.floodlight import bridge

from .conftest import STORE_PASSWORD, issue_client, make_ca

REPO = Path(__file__).resolve().parents[2]
PREFIX = "net.floodlightcontroller.restserver.RestApiServer."


def ftrust(cfg: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floodlight_trust", "--config", str(cfg), *argv],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=dict(os.environ, **env),
    )  # fmt: skip


def test_provision_status_and_check(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path / "state")  # state/ca as ca.dir expects
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[floodlight]\nkeystore = "{tmp_path / "keystore.jks"}"\n')
    props = tmp_path / "floodlight.properties"
    props.write_text(f"# mine\nfloodlight.modules=a,b\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n")
    env = {"FTRUST_KEYSTORE_PASSWORD": STORE_PASSWORD.reveal()}

    r = ftrust(cfg, "floodlight", "provision", "--properties", str(props), "--json", **env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["server_key_created"] and out["java_check"] is True and out["restart_required"]
    assert out["jvm_flags"][:3] == list(bridge.REVOCATION_JVM_FLAGS)
    text = props.read_text()
    assert text.startswith("# mine\nfloodlight.modules=a,b\n")
    assert f"{PREFIX}httpsNeedClientAuthentication=YES\n" in text and f"{PREFIX}useHttp=NO\n" in text

    status = ftrust(cfg, "floodlight", "status", "--properties", str(props), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    seen = json.loads(status.stdout)
    assert seen["problems"] == [] and seen["java_ok"] is True
    assert seen["settings"]["need_client_auth"] is True

    cert, key, _ = issue_client(ca, tmp_path, "vnf-a")
    with bridge.FloodlightEndpoint(tmp_path / "keystore.jks", STORE_PASSWORD) as endpoint:
        ok = ftrust(cfg, "floodlight", "check", endpoint.url, "--cert", str(cert), "--key", str(key))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "client certificate requested: yes; sent: yes" in ok.stdout and "accepted: HTTP 200" in ok.stdout
        anonymous = ftrust(cfg, "floodlight", "check", endpoint.url)
        assert anonymous.returncode == 1 and "refused:" in anonymous.stdout


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    missing = ftrust(cfg, "floodlight", "status", "--properties", str(tmp_path / "nope.properties"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr == f"ftrust: error: {tmp_path / 'nope.properties'}: properties file not found\n"
    unreachable = ftrust(cfg, "floodlight", "check", "http://127.0.0.1:1")
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("ftrust: error: not an https URL")
    no_password = ftrust(cfg, "floodlight", "keystore", "list", "--keystore", str(tmp_path / "k.jks"),
                         FTRUST_KEYSTORE_PASSWORD="")  # fmt: skip
    assert no_password.returncode == 2 and "keystore password not given" in no_password.stderr
