"""A client key that does not load says which file and why (OpenSSL alone says `[SSL] PEM lib`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from floodlight_trust.errors import InputError
from floodlight_trust.manager.client import tls_context
from floodlight_trust.secrets import Secret
from tests.support.cli import ftrust, state_config


def key_and_cert(tmp_path: Path, password: bytes | None, name: str = "admin") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(hours=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    key_path, cert_path = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def test_wrong_password_names_the_key_file(tmp_path: Path) -> None:
    cert, key = key_and_cert(tmp_path, b"the right password")
    with pytest.raises(InputError) as e:
        tls_context(True, (cert, key), Secret("not it", "env:FTRUST_ADMIN_KEY_PASSWORD"))
    assert str(e.value) == (
        f"{key}: cannot decrypt the private key: the password from env:FTRUST_ADMIN_KEY_PASSWORD is wrong"
        " (or the file is damaged)"
    )
    with pytest.raises(InputError, match="the private key is encrypted and no password was given"):
        tls_context(True, (cert, key), None)
    tls_context(True, (cert, key), Secret("the right password", "env:X"))  # loads


def test_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    cert, _ = key_and_cert(tmp_path, None, "one")
    _, other_key = key_and_cert(tmp_path, None, "two")
    with pytest.raises(InputError) as e:
        tls_context(True, (cert, other_key), None)
    assert str(e.value) == f"{other_key}: the private key is not the key of the certificate {cert}"


def test_cli_admin_with_a_wrong_key_password(tmp_path: Path) -> None:
    cfg = state_config(tmp_path)
    env = {"FTRUST_CA_PASSWORD": "ca password 123", "FTRUST_ADMIN_KEY_PASSWORD": "admin password 1"}
    assert ftrust("ca", "init", config=cfg, env=env).returncode == 0
    made = ftrust("vm", "admin-cert", "admin", config=cfg, env=env)
    assert made.returncode == 0, made.stderr
    r = ftrust("vm", "hosts", "list", "--vm-url", "https://127.0.0.1:9", "--vm-certificate",
               str(tmp_path / "state" / "admin" / "admin.pem"), config=cfg, env={**env,
               "FTRUST_ADMIN_KEY_PASSWORD": "wrong password"})  # fmt: skip
    key = tmp_path / "state" / "admin" / "admin.key"
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[0] == (
        f"ftrust: error: {key}: cannot decrypt the private key: the password from"
        " env:FTRUST_ADMIN_KEY_PASSWORD is wrong (or the file is damaged)"
    )
    assert "PEM lib" not in r.stderr
