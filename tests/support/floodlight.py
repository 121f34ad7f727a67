"""Floodlight's side in the tests: the Java bridge (the JDK's TLS stack and KeyStore, a fixture for
every test that asks for ``bridge_jar``), a test VNF CA, client certificates and the keystore."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from floodlight_trust.floodlight import bridge
from floodlight_trust.floodlight.keystore import FloodlightKeystore
from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.sqlite import SqliteStorage

STORE_PASSWORD = Secret("keystore-pass", "env:TEST_KEYSTORE")


@pytest.fixture(scope="session")
def bridge_jar() -> Path:
    """The java-bridge, built once per session (cached by source hash across sessions)."""
    assert shutil.which("javac"), "the Floodlight tests need a JDK (javac, java, keytool)"
    return bridge.build_jar()


def make_ca(
    directory: Path, *, crl_url: str = "http://127.0.0.1:9/crl.der", name: str = "CN=Test VNF CA"
) -> CertificateAuthority:
    records = SqliteStorage(directory / "state.db").certificates()
    return CertificateAuthority.init(
        directory / "ca", Secret("ca password 1", "env:T"), subject=name, crl_url=crl_url,
        ocsp_url="http://127.0.0.1:9/ocsp", at=datetime.now(UTC), records=records,
    )  # fmt: skip


def issue_client(ca: CertificateAuthority, directory: Path, name: str) -> tuple[Path, Path, int]:
    """A client certificate and key as PEM files; returns (cert, key, serial)."""
    key = generate_private_key("ec-p256")
    issued = ca.issue(key.public_key(), CertificateProfile().render(vnf=name, host="h"), at=datetime.now(UTC))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(issued.pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, issued.serial


def write_keystore(tmp_path: Path, ca: CertificateAuthority) -> tuple[Path, Path]:
    """Floodlight's keystore trusting ``ca``; returns (keystore, server certificate PEM)."""
    store = FloodlightKeystore.new(STORE_PASSWORD)
    store.add_trusted_ca("ftrust-ca", ca.certificate)
    store.ensure_server_key("floodlight", "CN=floodlight", ["localhost", "127.0.0.1"])
    path = tmp_path / "keystore.jks"
    store.save(path)
    server_pem = tmp_path / "server.pem"
    server_pem.write_bytes(store.certificate("floodlight").public_bytes(serialization.Encoding.PEM))
    return path, server_pem
