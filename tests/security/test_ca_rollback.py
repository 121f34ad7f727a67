"""Issue 18 (controller admin): `floodlight provision` once put back the CA that `keystore
rotate-ca` had replaced. Once the overlap entry is removed (the old CA retired, e.g. because its key
leaked), that re-trusted the retired CA: its certificates got HTTP 200 from the controller again.
Now provision never changes the CA under the alias; the attack is refused and the controller, over
real HTTPS with client authentication, keeps refusing the retired CA's certificates."""

from __future__ import annotations

import json
from pathlib import Path

from floodlight_trust.floodlight import bridge
from floodlight_trust.floodlight.keystore import FloodlightKeystore
from tests.support.cli import ftrust
from tests.support.floodlight import STORE_PASSWORD, issue_client, make_ca

PREFIX = "net.floodlightcontroller.restserver.RestApiServer."


def test_provision_cannot_bring_back_a_retired_ca(tmp_path: Path) -> None:
    bridge.build_jar()
    old_ca, new_ca = make_ca(tmp_path / "old", name="CN=Retired CA"), make_ca(tmp_path / "new", name="CN=New CA")
    old_pem, new_pem = tmp_path / "old" / "ca" / "ca.cert.pem", tmp_path / "new" / "ca" / "ca.cert.pem"
    keystore, props = tmp_path / "keystore.jks", tmp_path / "floodlight.properties"
    props.write_text(f"{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n{PREFIX}httpPort=8080\n")
    cfg = tmp_path / "ftrust.toml"
    # The Floodlight host's config still points at the OLD CA's state (the stale copy an attacker or
    # a careless script re-runs provision from).
    cfg.write_text(f'[state]\ndir = "{tmp_path / "old"}"\n[floodlight]\nkeystore = "{keystore}"\n')
    env = {"FTRUST_KEYSTORE_PASSWORD": STORE_PASSWORD.reveal()}

    assert ftrust("floodlight", "provision", "--properties", str(props), "--no-java-check", config=cfg,
                  env=env).returncode == 0  # fmt: skip
    assert ftrust("floodlight", "keystore", "rotate-ca", "ftrust-ca", str(new_pem), config=cfg, env=env).returncode == 0
    listed = json.loads(ftrust("floodlight", "keystore", "list", "--json", config=cfg, env=env).stdout)
    old_alias = next(e["alias"] for e in listed["entries"] if e["alias"].startswith("ftrust-ca-old-"))
    assert (
        ftrust("floodlight", "keystore", "remove", old_alias, config=cfg, env=env).returncode == 0
    )  # the overlap is over
    retired = keystore.read_bytes()

    # The attack: provision again from the stale state (and with the old certificate named outright).
    for extra in ([], ["--ca-cert", str(old_pem)]):
        r = ftrust(
            "floodlight", "provision", "--properties", str(props), "--no-java-check", *extra, config=cfg, env=env
        )
        assert r.returncode == 2, r.stdout + r.stderr
        assert "the keystore trusts another CA under 'ftrust-ca' (CN=New CA" in r.stderr
        assert "provision would replace it with CN=Retired CA" in r.stderr
        assert keystore.read_bytes() == retired  # nothing written
    store = FloodlightKeystore.load(keystore, STORE_PASSWORD)
    assert [c.subject.rfc4514_string() for c in store.trusted_certificates()][:1] == ["CN=New CA"]

    # Over real HTTPS: the controller refuses the retired CA's client certificate, accepts the new one's.
    old_cert, old_key, _ = issue_client(old_ca, tmp_path, "vnf-old")
    new_cert, new_key, _ = issue_client(new_ca, tmp_path, "vnf-new")
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD) as endpoint:
        refused = ftrust("floodlight", "check", endpoint.url, "--cert", str(old_cert), "--key",
                         str(old_key), "--json", config=cfg, env=env)  # fmt: skip
        accepted = ftrust("floodlight", "check", endpoint.url, "--cert", str(new_cert), "--key",
                          str(new_key), "--json", config=cfg, env=env)  # fmt: skip
    assert refused.returncode == 1 and json.loads(refused.stdout)["accepted"] is False, refused.stdout
    assert accepted.returncode == 0 and json.loads(accepted.stdout)["status"] == 200, accepted.stdout
