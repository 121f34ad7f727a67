"""`ftrust floodlight`: provision a properties file and keystore, status as Java sees it, check a URL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from floodlight_trust.floodlight import bridge
from tests.support.cli import ftrust
from tests.support.floodlight import STORE_PASSWORD, issue_client, make_ca

PREFIX = "net.floodlightcontroller.restserver.RestApiServer."


def test_provision_status_and_check(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path / "state")  # state/ca as ca.dir expects
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[floodlight]\nkeystore = "{tmp_path / "keystore.jks"}"\n')
    props = tmp_path / "floodlight.properties"
    props.write_text(f"# mine\nfloodlight.modules=a,b\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n")
    env = {"FTRUST_KEYSTORE_PASSWORD": STORE_PASSWORD.reveal()}

    r = ftrust("floodlight", "provision", "--properties", str(props), "--json", config=cfg, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["server_key_created"] and out["java_check"] is True and out["restart_required"]
    assert out["jvm_flags"][:3] == list(bridge.REVOCATION_JVM_FLAGS)
    text = props.read_text()
    assert text.startswith("# mine\nfloodlight.modules=a,b\n")
    assert f"{PREFIX}httpsNeedClientAuthentication=YES\n" in text and f"{PREFIX}useHttp=NO\n" in text

    status = ftrust("floodlight", "status", "--properties", str(props), "--json", config=cfg)
    assert status.returncode == 0, status.stdout + status.stderr
    seen = json.loads(status.stdout)
    assert seen["problems"] == [] and seen["java_ok"] is True
    assert seen["settings"]["need_client_auth"] is True

    cert, key, _ = issue_client(ca, tmp_path, "vnf-a")
    with bridge.FloodlightEndpoint(tmp_path / "keystore.jks", STORE_PASSWORD) as endpoint:
        ok = ftrust("floodlight", "check", endpoint.url, "--cert", str(cert), "--key", str(key), config=cfg)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "client certificate requested: yes; sent: yes" in ok.stdout and "accepted: HTTP 200" in ok.stdout
        anonymous = ftrust("floodlight", "check", endpoint.url, config=cfg)
        assert anonymous.returncode == 1 and "refused:" in anonymous.stdout


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    missing = ftrust("floodlight", "status", "--properties", str(tmp_path / "nope.properties"), config=cfg)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr == f"ftrust: error: {tmp_path / 'nope.properties'}: properties file not found\n"
    unreachable = ftrust("floodlight", "check", "http://127.0.0.1:1", config=cfg)
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("ftrust: error: not an https URL")
    no_password = ftrust("floodlight", "keystore", "list", "--keystore", str(tmp_path / "k.jks"),
                         config=cfg, env={"FTRUST_KEYSTORE_PASSWORD": ""})  # fmt: skip
    assert no_password.returncode == 2 and "keystore password not given" in no_password.stderr


def test_keystore_with_a_five_character_password_is_listed_with_the_problem_and_never_rewritten(
    tmp_path: Path,
) -> None:
    import jks

    from floodlight_trust.floodlight.keystore import FloodlightKeystore

    # A store the manager would never write (as an old hand-made one): re-saved with "abcde" by pyjks.
    draft = FloodlightKeystore.new(STORE_PASSWORD)
    draft.add_trusted_ca("ftrust-ca", make_ca(tmp_path / "ca").certificate)
    draft.ensure_server_key("floodlight", "CN=floodlight", ["127.0.0.1"])
    draft.save(tmp_path / "draft.jks")
    store = tmp_path / "five.jks"
    jks.KeyStore.load(str(tmp_path / "draft.jks"), STORE_PASSWORD.reveal()).save(str(store), "abcde")
    (tmp_path / "draft.jks").unlink()
    shutil.rmtree(tmp_path / "ca")
    before = store.read_bytes()
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n[floodlight]\nkeystore = "{store}"\n')
    listed = ftrust("floodlight", "keystore", "list", config=cfg, env={"FTRUST_KEYSTORE_PASSWORD": "abcde"})
    assert listed.returncode == 1 and "problem: store password is shorter than 6 characters" in listed.stdout
    assert "PrivateKeyEntry" in listed.stdout  # it was really opened with the 5-character password
    removed = ftrust(
        "floodlight", "keystore", "remove", "floodlight", config=cfg, env={"FTRUST_KEYSTORE_PASSWORD": "abcde"}
    )
    assert removed.returncode == 2 and len(removed.stderr.splitlines()) == 1 and "Traceback" not in removed.stderr
    assert removed.stderr.startswith(f"ftrust: error: {store}: refusing to write a keystore Floodlight cannot load")
    assert store.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["five.jks", "ftrust.toml"]
