"""A controller admin's commands: provision from the CA certificate alone, rotation and password
changes that keep keystore and properties consistent, exporting the server certificate, and the
recommended (OCSP) flags. Keystores are checked by Java (status) and served by the java-bridge."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from floodlight_trust.floodlight import bridge
from floodlight_trust.floodlight.keystore import FloodlightKeystore
from floodlight_trust.floodlight.properties import PREFIX, PropertiesFile
from floodlight_trust.secrets import Secret
from tests.support.cli import ftrust
from tests.support.floodlight import STORE_PASSWORD, issue_client, make_ca

NEW_PASSWORD = "a new keystore password"
KEYSTORE_ENV = {"FTRUST_KEYSTORE_PASSWORD": STORE_PASSWORD.reveal()}


def floodlight_host(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A Floodlight host with no CA state at all: a config, a properties file, a keystore path."""
    host = tmp_path / "floodlight-host"
    host.mkdir()
    cfg = host / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{host / "no-state"}"\n[floodlight]\nkeystore = "{host / "keystore.jks"}"\n')
    props = host / "floodlight.properties"
    props.write_text(f"floodlight.modules=a\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n{PREFIX}httpPort=8080\n")
    return cfg, props, host / "keystore.jks"


def test_provision_with_the_ca_certificate_alone_and_ocsp_flags(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path / "vm")
    cfg, props, keystore = floodlight_host(tmp_path)
    ca_pem = tmp_path / "ca.cert.pem"
    ca_pem.write_bytes((tmp_path / "vm" / "ca" / "ca.cert.pem").read_bytes())
    r = ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(ca_pem), "--json",
               config=cfg, env=KEYSTORE_ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    store = FloodlightKeystore.load(keystore, STORE_PASSWORD)
    assert store.certificate("ftrust-ca") == ca.certificate
    # The recommended flags: the revocation flags plus OCSP through a security properties file.
    security = keystore.parent / "ftrust-ocsp.security"
    assert security.read_text() == "ocsp.enable=true\n"
    assert out["revocation"] == "ocsp"
    assert out["jvm_flags"] == [*bridge.revocation_jvm_flags(), *bridge.ocsp_jvm_flags(security)]
    assert out["restart_command"] == bridge.floodlight_command(out["jvm_flags"], props.resolve())
    text = ftrust(
        "floodlight", "provision", "--properties", str(props), "--ca-cert", str(ca_pem), config=cfg, env=KEYSTORE_ENV
    )
    assert text.returncode == 0, text.stderr
    assert "OCSP on every handshake" in text.stdout and f"-Djava.security.properties={security}" in text.stdout
    assert f"-cf {props.resolve()}" in text.stdout
    crl = ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(ca_pem),
                 "--revocation", "crl", "--json", config=cfg, env=KEYSTORE_ENV)  # fmt: skip
    assert crl.returncode == 0, crl.stderr
    assert json.loads(crl.stdout)["jvm_flags"] == bridge.revocation_jvm_flags()
    # Without --ca-cert and without CA state: a located error.
    missing = ftrust("floodlight", "provision", "--properties", str(props), config=cfg, env=KEYSTORE_ENV)
    assert missing.returncode == 2 and "CA certificate not found" in missing.stderr


def test_provision_after_rotate_ca_refuses_to_put_the_old_ca_back(tmp_path: Path, bridge_jar: Path) -> None:
    make_ca(tmp_path / "old", name="CN=Old CA")
    make_ca(tmp_path / "new", name="CN=New CA")
    old_pem, new_pem = tmp_path / "old" / "ca" / "ca.cert.pem", tmp_path / "new" / "ca" / "ca.cert.pem"
    cfg, props, keystore = floodlight_host(tmp_path)
    assert ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(old_pem),
                  config=cfg, env=KEYSTORE_ENV).returncode == 0  # fmt: skip
    rotated = ftrust("floodlight", "keystore", "rotate-ca", "ftrust-ca", str(new_pem), config=cfg, env=KEYSTORE_ENV)
    assert rotated.returncode == 0, rotated.stderr
    before = keystore.read_bytes()
    again = ftrust(
        "floodlight", "provision", "--properties", str(props), "--ca-cert", str(old_pem), config=cfg, env=KEYSTORE_ENV
    )
    assert again.returncode == 2
    assert f"ftrust: error: {keystore}: the keystore trusts another CA under 'ftrust-ca' (CN=New CA" in again.stderr
    assert "provision would put back the CA it replaced (kept as 'ftrust-ca-old-" in again.stderr
    assert keystore.read_bytes() == before  # nothing written
    current = ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(new_pem),
                     "--json", config=cfg, env=KEYSTORE_ENV)  # fmt: skip
    assert current.returncode == 0, current.stderr
    store = FloodlightKeystore.load(keystore, STORE_PASSWORD)
    assert store.certificate("ftrust-ca").subject.rfc4514_string() == "CN=New CA"


def test_change_password_updates_the_properties_too(tmp_path: Path, bridge_jar: Path) -> None:
    make_ca(tmp_path / "vm")
    cfg, props, keystore = floodlight_host(tmp_path)
    ca_pem = tmp_path / "vm" / "ca" / "ca.cert.pem"
    assert ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(ca_pem),
                  config=cfg, env=KEYSTORE_ENV).returncode == 0  # fmt: skip
    before_store, before_props = keystore.read_bytes(), props.read_bytes()

    # No properties file known: refused before anything is written, saying why.
    alone = ftrust("floodlight", "keystore", "change-password", config=cfg, env={**KEYSTORE_ENV,
                   "FTRUST_NEW_KEYSTORE_PASSWORD": NEW_PASSWORD})  # fmt: skip
    assert alone.returncode == 2
    assert "no properties file is given" in alone.stderr and "--keystore-only" in alone.stderr
    # A properties file naming another keystore: refused, located at its keyStorePath line.
    other = tmp_path / "other.properties"
    other.write_text(f"{PREFIX}keyStorePath=/elsewhere.jks\n")
    wrong = ftrust("floodlight", "keystore", "change-password", "--properties", str(other), config=cfg,
                   env={**KEYSTORE_ENV, "FTRUST_NEW_KEYSTORE_PASSWORD": NEW_PASSWORD})  # fmt: skip
    assert wrong.returncode == 2 and f"{other}:1: keyStorePath there is '/elsewhere.jks'" in wrong.stderr
    assert keystore.read_bytes() == before_store and props.read_bytes() == before_props

    ok = ftrust("floodlight", "keystore", "change-password", "--properties", str(props), "--json",
                config=cfg, env={**KEYSTORE_ENV, "FTRUST_NEW_KEYSTORE_PASSWORD": NEW_PASSWORD})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert PropertiesFile.load(props).get(PREFIX + "keyStorePassword") == NEW_PASSWORD
    assert FloodlightKeystore.load(keystore, Secret(NEW_PASSWORD, "t")).certificate("ftrust-ca")
    # Java loads the store with the password the properties now hold: status is clean.
    status = ftrust("floodlight", "status", "--properties", str(props), "--json", config=cfg, env=KEYSTORE_ENV)
    assert status.returncode == 0, status.stdout
    assert json.loads(status.stdout)["java_ok"] is True


def test_export_cert_lets_a_client_verify_the_controller(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path / "vm")
    cfg, props, keystore = floodlight_host(tmp_path)
    ca_pem = tmp_path / "vm" / "ca" / "ca.cert.pem"
    assert ftrust("floodlight", "provision", "--properties", str(props), "--ca-cert", str(ca_pem),
                  config=cfg, env=KEYSTORE_ENV).returncode == 0  # fmt: skip
    server_pem = tmp_path / "server.pem"
    r = ftrust("floodlight", "export-cert", "--out", str(server_pem), "--json", config=cfg, env=KEYSTORE_ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    cert = x509.load_pem_x509_certificate(server_pem.read_bytes())
    assert cert == FloodlightKeystore.load(keystore, STORE_PASSWORD).certificate("floodlight")
    assert doc["alias"] == "floodlight" and doc["subject"] == "CN=floodlight"
    to_stdout = ftrust("floodlight", "export-cert", config=cfg, env=KEYSTORE_ENV)
    assert to_stdout.returncode == 0 and to_stdout.stdout.encode() == server_pem.read_bytes()
    unknown = ftrust("floodlight", "export-cert", "--alias", "nope", config=cfg, env=KEYSTORE_ENV)
    assert unknown.returncode == 2 and "no entry 'nope' in the keystore" in unknown.stderr
    # docs/floodlight.md's check: --ca server.pem verifies the controller, the client gets 200.
    client_cert, client_key, _ = issue_client(ca, tmp_path, "vnf-a")
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD) as endpoint:
        ok = ftrust("floodlight", "check", endpoint.url, "--cert", str(client_cert), "--key",
                    str(client_key), "--ca", str(server_pem), config=cfg, env=KEYSTORE_ENV)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "server certificate verified" in ok.stdout and "accepted: HTTP 200" in ok.stdout
