"""The VM's own private keys are 0600 and encrypted at rest (its TLS key, admin client keys)."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust import clock
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.manager.tls import ensure_server_certificate, server_context
from floodlight_trust.secrets import Secret
from tests.support.world import World

PW = Secret("vm tls key password", "test")


def assert_encrypted_0600(path: Path, password: Secret) -> None:
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # no password: refused
        serialization.load_pem_private_key(data, password=None)
    assert isinstance(
        serialization.load_pem_private_key(data, password=password.reveal_bytes()), ec.EllipticCurvePrivateKey
    )


def test_vm_tls_key_is_encrypted_and_loads_into_the_server_context(tmp_path: Path) -> None:
    cert, key = ensure_server_certificate(tmp_path / "vm-tls", ["127.0.0.1"], at=clock.now(), password=PW)
    assert_encrypted_0600(key, PW)
    ca_pem = cert.read_bytes()
    assert isinstance(server_context(cert, key, ca_pem, PW), ssl.SSLContext)
    with pytest.raises(ssl.SSLError):
        server_context(cert, key, ca_pem, Secret("wrong", "test"))


def test_a_plaintext_key_from_an_older_version_is_re_encrypted(tmp_path: Path) -> None:
    cert, key = ensure_server_certificate(tmp_path, ["127.0.0.1"], at=clock.now(), password=PW)
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=PW.reveal_bytes())
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    before = cert.read_bytes()
    ensure_server_certificate(tmp_path, ["127.0.0.1"], at=clock.now(), password=PW)
    assert cert.read_bytes() == before  # same identity, pinned certificates stay valid
    assert_encrypted_0600(key, PW)


def test_admin_key_is_encrypted(world: World, tmp_path: Path) -> None:
    password = Secret("bob's key password", "test")
    cert, key = issue_admin_certificate(world.service.admin_ca, "bob", tmp_path, at=clock.now(), password=password)
    assert_encrypted_0600(key, password)
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
