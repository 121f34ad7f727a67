"""`ftrust floodlight provision --floodlight-home`, `status` and `controller-cert` for the plugin.

The files are installed for a Floodlight home given as a directory (the module jar is only built
against a real one: tests/floodlight/test_real_floodlight.py); what matters here is what lands on
disk, with which modes, and the command line printed.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography import x509

from floodlight_trust.floodlight import bridge, plugin
from floodlight_trust.floodlight.properties import PropertiesFile
from floodlight_trust.secrets import Secret
from tests.support.cli import ftrust
from tests.support.floodlight import make_ca

PREFIX = "net.floodlightcontroller.restserver.RestApiServer."


def fake_home(tmp_path: Path) -> Path:
    home = tmp_path / "floodlight"
    (home / "target").mkdir(parents=True)
    (home / "lib").mkdir()
    (home / "target" / "floodlight.jar").write_bytes(b"")  # only its path is used here
    return home


def test_install_writes_every_file_and_the_exact_command(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path / "state")
    home = fake_home(tmp_path)
    props_path = tmp_path / "floodlight.properties"
    props_path.write_text(
        "floodlight.modules=\\\n  net.floodlightcontroller.core.internal.FloodlightProvider,\\\n"
        f"  net.floodlightcontroller.restserver.RestApiServer\n{PREFIX}keyStorePassword=s3cret-pass\n"
    )
    vm_cert = tmp_path / "vm.pem"
    vm_cert.write_bytes(ca.certificate_pem)
    p12 = tmp_path / "controller.p12"
    p12.write_bytes(b"p12 bytes")
    installed = plugin.install(
        floodlight_home=home, properties=PropertiesFile.load(props_path), directory=tmp_path / "plugin",
        jars=[bridge_jar], bundle_pem=ca.certificate_pem, mode=plugin.RevocationMode.STREAM,
        vm_url="https://vm.example:8443", vm_certificate=vm_cert, controller_p12=p12,
        controller_password=Secret("controller pass", "test"), staleness_seconds=3, slot=13, java="/usr/bin/java",
        extra_classpath=[Path("/usr/share/java/jaxb-api.jar")],
    )  # fmt: skip
    d = tmp_path / "plugin"
    assert installed.jars == (d / "lib" / "ftrust-bridge.jar",)
    assert (d / "lib" / "ftrust-bridge.jar").read_bytes() == bridge_jar.read_bytes()
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir() if p.is_file()}
    assert mode["controller.pass"] == 0o600 and mode["controller.p12"] == 0o600
    assert (d / "controller.pass").read_text() == "controller pass\n"
    assert (d / "ftrust.security").read_text().endswith("security.provider.13=ftrust.trust.FtrustProvider\n")
    cfg = plugin.TrustProviderConfig.parse((d / "ftrust-trust.properties").read_text(), source="cfg")
    assert cfg.vm_url == "https://vm.example:8443" and cfg.staleness_seconds == 3
    assert cfg.trust_bundle == d / "vnf-ca-bundle.pem" and cfg.controller_password_file == d / "controller.pass"
    logback = (d / "logback.xml").read_text()
    assert f'<logger name="{plugin.REST_API_LOGGER}" level="WARN" />' in logback
    props = PropertiesFile.load(props_path)
    assert props.get("floodlight.modules") == (
        "net.floodlightcontroller.core.internal.FloodlightProvider,"
        "net.floodlightcontroller.restserver.RestApiServer,ftrust.floodlight.FtrustModule"
    )
    assert props.get(plugin.MODULE_CONFIG_KEY) == str(d / "ftrust-trust.properties")
    assert installed.properties_backup is not None and installed.properties_backup.is_file()
    assert list(installed.command) == [
        "/usr/bin/java",
        f"-Djava.security.properties={d / 'ftrust.security'}",
        "-Dssl.TrustManagerFactory.algorithm=FtrustVNF",
        f"-Dftrust.trust.config={d / 'ftrust-trust.properties'}",
        "-Djdk.tls.server.enableSessionTicketExtension=false",
        "-Dcom.sun.security.ocsp.timeout=2",
        f"-Dlogback.configurationFile={d / 'logback.xml'}",
        "-cp",
        f"{home / 'target' / 'floodlight.jar'}:{home / 'lib'}/*:{d / 'lib' / 'ftrust-bridge.jar'}:/usr/share/java/jaxb-api.jar",
        "net.floodlightcontroller.core.Main",
        "-cf",
        str(props_path),
    ]
    assert not any("s3cret" in a or "controller pass" in a for a in installed.command)
    again = plugin.install(
        floodlight_home=home, properties=PropertiesFile.load(props_path), directory=d, jars=[bridge_jar],
        bundle_pem=ca.certificate_pem, mode=plugin.RevocationMode.STREAM, vm_url="https://vm.example:8443",
        vm_certificate=vm_cert, controller_p12=p12, controller_password=Secret("controller pass", "test"),
        staleness_seconds=3, slot=13, java="/usr/bin/java",
    )  # fmt: skip
    assert again.properties_changed == () and again.properties_backup is None  # idempotent

    cfg_file = tmp_path / "ftrust.toml"
    cfg_file.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    status = ftrust(
        "floodlight", "status", "--properties", str(props_path), "--no-java-check", "--json", config=cfg_file
    )
    seen = json.loads(status.stdout)["plugin"]
    assert seen["configured"] is True and seen["vm_url"] == "https://vm.example:8443"
    assert seen["revocation_mode"] == "stream" and seen["staleness_seconds"] == 3
    assert seen["trusted_cas"] == ["CN=Test VNF CA"] and seen["problems"] == []
    text = ftrust("floodlight", "status", "--properties", str(props_path), "--no-java-check", config=cfg_file).stdout
    assert "follows the VM at https://vm.example:8443 (revocation stream, fail closed past 3 s)" in text
    (d / "controller.p12").unlink()
    broken = json.loads(
        ftrust(
            "floodlight", "status", "--properties", str(props_path), "--no-java-check", "--json", config=cfg_file
        ).stdout
    )
    assert f"plugin: {d / 'controller.p12'} is missing" in broken["problems"]


def test_status_without_the_plugin_says_so(tmp_path: Path) -> None:
    props = tmp_path / "floodlight.properties"
    props.write_text("floodlight.modules=a,b\n")
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    r = ftrust("floodlight", "status", "--properties", str(props), "--no-java-check", config=cfg)
    assert "plugin: not configured" in r.stdout


def test_install_refuses_a_bundle_that_is_not_a_ca(tmp_path: Path, bridge_jar: Path) -> None:
    from floodlight_trust.errors import ConfigError
    from tests.support.floodlight import issue_client

    ca = make_ca(tmp_path)
    leaf, _, _ = issue_client(ca, tmp_path, "vnf-a")
    props_path = tmp_path / "floodlight.properties"
    props_path.write_text("floodlight.modules=a\n")
    try:
        plugin.install(
            floodlight_home=fake_home(tmp_path), properties=PropertiesFile.load(props_path),
            directory=tmp_path / "plugin", jars=[bridge_jar], bundle_pem=leaf.read_bytes(),
            mode=plugin.RevocationMode.OCSP, vm_url=None, vm_certificate=None, controller_p12=None,
            controller_password=None, staleness_seconds=5, slot=13, java="java",
        )  # fmt: skip
    except ConfigError as e:
        assert "not a CA" in str(e)
    else:
        raise AssertionError("a leaf certificate was accepted as the trust bundle")
    assert props_path.read_text() == "floodlight.modules=a\n" and not (tmp_path / "plugin").exists()


def test_controller_cert_issues_a_pkcs12_the_jdk_loads(tmp_path: Path, bridge_jar: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    make_ca(tmp_path / "state")
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    env = {"FTRUST_CA_PASSWORD": "ca password 1", "FTRUST_CONTROLLER_KEY_PASSWORD": "controller pass 1"}
    r = ftrust("floodlight", "controller-cert", "floodlight-1", "--json", config=cfg, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    p12 = Path(out["credential"])
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), b"controller pass 1")
    assert key is not None and cert is not None
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uris.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:ftrust:controller:floodlight-1"]
    seen = bridge.keystore_probe(p12, Secret("controller pass 1", "test"), "PKCS12")
    assert seen["ok"] is True  # the JDK's KeyStore reads it as the trust provider will
    short = ftrust(
        "floodlight", "controller-cert", "c2", config=cfg, env=dict(env, FTRUST_CONTROLLER_KEY_PASSWORD="short")
    )
    assert short.returncode != 0 and "shorter than 8 characters" in short.stderr
