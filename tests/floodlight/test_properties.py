"""Editing Floodlight's properties: only the REST keys change, everything else stays byte for byte."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from floodlight_trust.errors import InputError
from floodlight_trust.floodlight.properties import PREFIX, PropertiesFile, configure_rest_https, rest_settings
from floodlight_trust.secrets import Secret

ORIGINAL = (
    "# Floodlight configuration\r\n"
    "floodlight.modules=\\\r\n"
    "net.floodlightcontroller.core.internal.FloodlightProvider,\\\r\n"
    "    net.floodlightcontroller.restserver.RestApiServer\r\n"
    "! a comment in the other style\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.keyStorePath=/path/to/your/keystore-file.jks\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.keyStorePassword=your-keystore-password\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.httpsNeedClientAuthentication=NO\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.useHttps=NO\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.useHttp=YES\r\n"
    "net.floodlightcontroller.restserver.RestApiServer.httpPort=8080\r\n"
    "net.floodlightcontroller.core.internal.FloodlightProvider.openflowPort : 6653\r\n"
)


def test_reads_like_java_properties() -> None:
    props = PropertiesFile(ORIGINAL)
    assert props.get("floodlight.modules") == (
        "net.floodlightcontroller.core.internal.FloodlightProvider,net.floodlightcontroller.restserver.RestApiServer"
    )
    assert props.get("net.floodlightcontroller.core.internal.FloodlightProvider.openflowPort") == "6653"
    s = rest_settings(props)
    assert (s.use_https, s.use_http, s.need_client_auth, s.http_port) == (False, True, False, "8080")


def test_floodlight_true_words_and_empty_keystore_path() -> None:
    on = PropertiesFile(
        f"{PREFIX}useHttps= Stimmt \n{PREFIX}keyStorePath=/k.jks\n{PREFIX}httpsNeedClientAuthentication=yes\n"
    )
    assert rest_settings(on).use_https and rest_settings(on).need_client_auth
    off = PropertiesFile(f"{PREFIX}useHttps=YES\n{PREFIX}keyStorePath=\n{PREFIX}httpsNeedClientAuthentication=YES\n")
    assert not rest_settings(off).use_https and not rest_settings(off).need_client_auth


def test_configure_sets_only_rest_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "floodlightdefault.properties"
    path.write_bytes(ORIGINAL.encode("latin-1"))
    keystore = tmp_path / "keystore.jks"
    keystore.write_bytes(b"\xfe\xed\xfe\xed")
    props = PropertiesFile.load(path)
    changed = configure_rest_https(props, keystore_path=keystore, password=Secret(" pa\\ss=wörd", "env:X"))
    assert changed == [
        "useHttps",
        "keyStorePath",
        "keyStorePassword",
        "httpsNeedClientAuthentication",
        "httpsPort",
        "useHttp",
    ]
    path.chmod(0o644)  # as the file usually ships
    backup = props.save()
    assert backup is not None and backup.read_bytes() == ORIGINAL.encode("latin-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # it now holds the keystore password: not for others
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    new = path.read_bytes().decode("latin-1").splitlines(keepends=True)
    old = ORIGINAL.splitlines(keepends=True)
    # Untouched lines are identical and in order; the REST lines are rewritten in place.
    assert new[:5] == old[:5] and new[-1] == old[-1]
    assert new[5] == f"{PREFIX}keyStorePath={keystore}\r\n"
    assert new[6] == f"{PREFIX}keyStorePassword=\\ pa\\\\ss=w\\u00f6rd\r\n"
    assert new[11] == f"{PREFIX}httpsPort=8081\r\n"  # added after the last REST key
    again = PropertiesFile.load(path)
    s = rest_settings(again)
    assert s.use_https and s.need_client_auth and not s.use_http and s.https_port == "8081"
    assert s.keystore_password is not None and s.keystore_password.reveal() == " pa\\ss=wörd"
    assert configure_rest_https(again, keystore_path=keystore, password=Secret(" pa\\ss=wörd", "env:X")) == []


def test_refuses_a_keystore_path_floodlight_cannot_read(tmp_path: Path) -> None:
    props = PropertiesFile(ORIGINAL)
    with pytest.raises(InputError, match="must be absolute"):
        configure_rest_https(props, keystore_path=Path("relative.jks"), password=Secret("x" * 8, "env:X"))
    with pytest.raises(InputError, match="does not exist"):
        configure_rest_https(props, keystore_path=tmp_path / "missing.jks", password=Secret("x" * 8, "env:X"))
    assert props.text() == ORIGINAL
