"""`floodlight status` and docs/floodlight.md agree with what Floodlight 1.2's RestApiServer.init does.

Each fact below was read in Floodlight 1.2's source (RestApiServer.init, core.Main) and is stated in
docs/floodlight.md; the settings reader and the status command must behave the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from floodlight_trust.floodlight.properties import PREFIX, PROVIDER_PREFIX, PropertiesFile, rest_settings
from tests.support.cli import ftrust

DOC = (Path(__file__).resolve().parents[2] / "docs" / "floodlight.md").read_text()


def _doc_says(*phrases: str) -> None:
    flat = " ".join(DOC.split())
    for phrase in phrases:
        assert phrase in flat, f"docs/floodlight.md does not state: {phrase!r}"


def _status(tmp_path: Path, text: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    props = tmp_path / "f.properties"
    props.write_text(text)
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text('[state]\ndir = "state"\n')
    status = ("floodlight", "status", "--properties", props, "--no-java-check")
    as_json = ftrust(*status, "--json", config=cfg, timeout=60)
    as_text = ftrust(*status, config=cfg, timeout=60)
    assert as_json.returncode == as_text.returncode, as_json.stderr + as_text.stderr
    return as_json.returncode, json.loads(as_json.stdout), as_text.stdout


def test_empty_keystore_path_turns_plain_http_off_too(tmp_path: Path) -> None:
    text = f"{PREFIX}keyStorePath=\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n{PREFIX}httpPort=8080\n"
    s = rest_settings(PropertiesFile(text))
    assert (s.use_https, s.use_http, s.use_http_requested) == (False, False, True)
    assert any("serves no REST API at all" in f and "keyStorePath is empty" in f for f in s.startup_failures())
    code, doc, out = _status(tmp_path, text)
    assert code == 1
    assert doc["settings"]["use_http"] is False
    assert "plain HTTP: off" in out and "plain HTTP: on" not in out
    assert any("serves no REST API at all" in p for p in doc["problems"])
    _doc_says("with an empty `keyStorePath` and `useHttp=YES` Floodlight serves no REST API at all")


def test_a_placeholder_keystore_path_keeps_http_on() -> None:
    # The stock floodlightdefault.properties: useHttps=NO but a non-empty keyStorePath.
    text = f"{PREFIX}keyStorePath=/path/to/your/keystore-file.jks\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n"
    s = rest_settings(PropertiesFile(text + f"{PREFIX}httpPort=8080\n"))
    assert s.use_http and not s.use_https and s.startup_failures() == []


def test_no_https_port_means_floodlight_fails_to_start(tmp_path: Path) -> None:
    ks = tmp_path / "k.jks"
    text = f"{PREFIX}keyStorePath={ks}\n{PREFIX}keyStorePassword=x\n{PREFIX}useHttps=YES\n{PREFIX}useHttp=NO\n"
    s = rest_settings(PropertiesFile(text))
    assert s.https_port is None
    assert any("NumberFormatException: Cannot parse null string" in f for f in s.startup_failures())
    # status reports it, and shows no 8081 the code would never use
    s2 = rest_settings(PropertiesFile(text + f"{PREFIX}httpsPort=\n"))
    assert any("httpsPort is missing or empty" in f for f in s2.startup_failures())
    _doc_says(
        "8081/8080 are only the values of `floodlightdefault.properties`",
        "`NumberFormatException: Cannot parse null string`",
    )


def test_status_text_names_no_default_port(tmp_path: Path) -> None:
    # HTTPS on without a port and no keystore on disk: the keystore load is a separate error; use a
    # setting whose only fault is the port (HTTP on with an empty httpPort).
    text = f"{PREFIX}keyStorePath=/nonexistent.jks\n{PREFIX}useHttps=NO\n{PREFIX}useHttp=YES\n{PREFIX}httpPort=\n"
    code, doc, out = _status(tmp_path, text)
    assert code == 1
    assert "8080" not in out and "NO PORT (Floodlight fails to start)" in out
    assert any("httpPort is missing or empty" in p for p in doc["problems"])


def test_bad_and_equal_ports_are_startup_failures() -> None:
    base = f"{PREFIX}keyStorePath=/k.jks\n{PREFIX}useHttps=YES\n{PREFIX}useHttp=YES\n"
    bad = rest_settings(PropertiesFile(base + f"{PREFIX}httpsPort=80x\n{PREFIX}httpPort=70000\n"))
    failures = bad.startup_failures()
    assert any("httpsPort='80x' is not a port number" in f for f in failures)
    assert any("httpPort='70000' is not a port number" in f for f in failures)
    same = rest_settings(PropertiesFile(base + f"{PREFIX}httpsPort=8443\n{PREFIX}httpPort=8443\n"))
    assert any("cannot be the same" in f for f in same.startup_failures())


def test_host_falls_back_to_openflowhost(tmp_path: Path) -> None:
    text = f"{PROVIDER_PREFIX}openflowhost=10.1.2.3\n{PREFIX}keyStorePath=/k.jks\n{PREFIX}useHttp=YES\n{PREFIX}httpPort=8080\n"
    s = rest_settings(PropertiesFile(text))
    assert (s.host, s.host_key) == ("10.1.2.3", PROVIDER_PREFIX + "openflowhost")
    own = rest_settings(PropertiesFile(text + f"{PREFIX}host=127.0.0.1\n"))
    assert (own.host, own.host_key) == ("127.0.0.1", PREFIX + "host")
    code, _doc, out = _status(tmp_path, text)
    assert code == 1  # plain HTTP is on
    assert f"listens on: 10.1.2.3 (from {PROVIDER_PREFIX}openflowhost)" in out
    _doc_says("`host` falls back to `FloodlightProvider.openflowhost`")


def test_docs_state_the_jdk11_jaxb_need_and_exit_code() -> None:
    _doc_says(
        "JDK 11+ needs a JAXB API jar",
        "`NoClassDefFoundError: javax/xml/bind/DatatypeConverter`",
        "the JVM stays up with no REST port",
        "Keystore and port mistakes make the JVM exit with code 1",
    )
