"""The keystore manager writes only stores Floodlight can load, atomically."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from floodlight_trust import fileio
from floodlight_trust.errors import SecretError
from floodlight_trust.floodlight.keystore import FloodlightKeystore, KeystoreRefused
from floodlight_trust.secrets import Secret
from tests.support.floodlight import STORE_PASSWORD, make_ca


def keytool(*args: str, password: str = STORE_PASSWORD.reveal(), **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KT_STOREPASS=password, **extra_env)
    return subprocess.run(["keytool", *args], capture_output=True, text=True, env=env, timeout=60)


def provisioned(tmp_path: Path) -> tuple[FloodlightKeystore, Path]:
    ca = make_ca(tmp_path)
    store = FloodlightKeystore.new(STORE_PASSWORD)
    store.add_trusted_ca("ftrust-ca", ca.certificate)
    store.ensure_server_key("floodlight", "CN=floodlight", ["localhost", "127.0.0.1"])
    path = tmp_path / "keystore.jks"
    assert store.save(path) is None
    return store, path


def test_written_store_is_listed_by_keytool(tmp_path: Path) -> None:
    _, path = provisioned(tmp_path)
    r = keytool("-list", "-keystore", str(path), "-storetype", "JKS", "-storepass:env", "KT_STOREPASS")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Keystore type: JKS" in r.stdout and "Your keystore contains 2 entries" in r.stdout
    assert "ftrust-ca," in r.stdout and "trustedCertEntry" in r.stdout
    assert "floodlight," in r.stdout and "PrivateKeyEntry" in r.stdout


def test_rotation_keeps_old_and_new_then_remove(tmp_path: Path) -> None:
    store, path = provisioned(tmp_path)
    old = store.certificate("ftrust-ca")
    new_ca = make_ca(tmp_path / "second", name="CN=Second CA")
    kept = store.rotate_ca("ftrust-ca", new_ca.certificate)
    assert kept is not None and kept.startswith("ftrust-ca-old-")
    backup = store.save()
    assert backup is not None and backup.name.startswith("keystore.jks.") and backup.name.endswith(".bak")
    reloaded = FloodlightKeystore.load(path, STORE_PASSWORD)
    assert reloaded.certificate("ftrust-ca") == new_ca.certificate and reloaded.certificate(kept) == old
    assert {c.subject.rfc4514_string() for c in reloaded.trusted_certificates()} == {
        "CN=Test VNF CA", "CN=Second CA", "CN=floodlight"
    }  # fmt: skip
    reloaded.remove(kept)
    reloaded.save()
    assert FloodlightKeystore.load(path, STORE_PASSWORD).aliases() == ["ftrust-ca", "floodlight"]


def test_change_password_reencrypts_every_key(tmp_path: Path) -> None:
    store, path = provisioned(tmp_path)
    new = Secret("another-pass", "env:NEW")
    store.change_password(new)
    store.save()
    with pytest.raises(SecretError, match="password from env:TEST_KEYSTORE is wrong"):
        FloodlightKeystore.load(path, STORE_PASSWORD)
    reloaded = FloodlightKeystore.load(path, new)
    assert reloaded.problems() == []
    assert all(e.key_password_matches for e in reloaded.entries())
    with pytest.raises(KeystoreRefused, match="shorter than 6"):
        reloaded.change_password(Secret("short", "env:S"))


def test_mismatched_key_password_is_refused_before_java_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.jks"
    r = keytool("-genkeypair", "-alias", "floodlight", "-keyalg", "EC", "-dname", "CN=floodlight",
                "-keystore", str(path), "-storetype", "JKS", "-storepass:env", "KT_STOREPASS",
                "-keypass:env", "KT_KEYPASS", KT_KEYPASS="a-different-pass")  # fmt: skip
    assert r.returncode == 0, r.stderr
    before = path.read_bytes()
    store = FloodlightKeystore.load(path, STORE_PASSWORD)
    assert [e.key_password_matches for e in store.entries()] == [False]
    store.add_trusted_ca("ftrust-ca", make_ca(tmp_path).certificate)
    assert any("Cannot recover key" in p for p in store.problems())
    with pytest.raises(KeystoreRefused, match="key 'floodlight' has a password different from the store password"):
        store.save()
    assert path.read_bytes() == before


def test_short_password_and_jceks_are_refused(tmp_path: Path) -> None:
    store = FloodlightKeystore.new(Secret("12345", "env:S"))
    store.add_trusted_ca("ca", make_ca(tmp_path).certificate)
    store.ensure_server_key("floodlight", "CN=floodlight", ["127.0.0.1"])
    with pytest.raises(KeystoreRefused, match="shorter than 6 characters") as refused:
        store.save(tmp_path / "short.jks")
    assert str(refused.value).startswith(f"{tmp_path / 'short.jks'}: refusing to write")  # located at the target
    assert not (tmp_path / "short.jks").exists()
    jceks = tmp_path / "store.jceks"
    r = keytool("-genkeypair", "-alias", "k", "-keyalg", "EC", "-dname", "CN=k", "-keystore", str(jceks),
                "-storetype", "JCEKS", "-storepass:env", "KT_STOREPASS")  # fmt: skip
    assert r.returncode == 0, r.stderr
    with pytest.raises(KeystoreRefused, match="keystore is JCEKS; Floodlight loads JKS"):
        FloodlightKeystore.load(jceks, STORE_PASSWORD)


def test_crash_between_write_and_rename_keeps_the_old_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, path = provisioned(tmp_path)
    before = path.read_bytes()
    store.rotate_ca("ftrust-ca", make_ca(tmp_path / "second", name="CN=Second CA").certificate)

    def crash(tmp: Path) -> None:
        assert tmp.read_bytes() != before  # the new store is complete on disk, not yet renamed
        raise KeyboardInterrupt("power loss")

    monkeypatch.setattr(fileio, "_before_rename", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    assert path.read_bytes() == before
    assert FloodlightKeystore.load(path, STORE_PASSWORD).problems() == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_pkcs12_store_keeps_trusted_entries_for_java(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    store = FloodlightKeystore.new(STORE_PASSWORD, "PKCS12")
    store.add_trusted_ca("ftrust-ca", ca.certificate)
    store.ensure_server_key("floodlight", "CN=floodlight", ["127.0.0.1"])
    path = tmp_path / "keystore.p12"
    store.save(path)
    # Floodlight asks for type JKS; Java 9+ reads the PKCS12 file under that type.
    r = keytool("-list", "-keystore", str(path), "-storetype", "JKS", "-storepass:env", "KT_STOREPASS")
    assert r.returncode == 0, r.stderr
    assert "Keystore type: PKCS12" in r.stdout or "Keystore type: JKS" in r.stdout
    assert "ftrust-ca," in r.stdout and "trustedCertEntry" in r.stdout
    reloaded = FloodlightKeystore.load(path, STORE_PASSWORD)
    assert reloaded.store_type == "PKCS12" and reloaded.aliases() == ["ftrust-ca", "floodlight"]
