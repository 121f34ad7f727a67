"""Issue 11.11: hardening.

- `ftrust ca issue --generate-key` wrote an unencrypted key (the docs promise every key is
  encrypted): now encrypted with $FTRUST_KEY_PASSWORD (or --key-password-file), refused without one.
- TLS 1.2 on the VM still offered CBC suites: only ECDHE with AEAD now, on every listener.
- The VM's own TLS certificate was CA:TRUE: it can no longer vouch for anything.
(`agent_url` validation at registration: test_malformed_input.py.)
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.cli import ftrust, state_config
from tests.support.world import World, start_tls_agent


def test_ca_issue_generate_key_writes_an_encrypted_key_and_refuses_without_a_password(tmp_path: Path) -> None:
    env = {"FTRUST_CA_PASSWORD": "ca password 1"}
    cfg = state_config(tmp_path)
    assert ftrust("ca", "init", config=cfg, env=env).returncode == 0
    key = tmp_path / "vnf.key"
    refused = ftrust("ca", "issue", "--subject", "CN=vnf-x", "--generate-key", str(key), config=cfg, env=env)
    assert refused.returncode == 2 and "key password not given" in refused.stderr, refused.stderr
    assert not key.exists() and "CN=vnf-x" not in ftrust("ca", "list", config=cfg, env=env).stdout
    ok = ftrust("ca", "issue", "--subject", "CN=vnf-x", "--generate-key", str(key), "--out", str(tmp_path / "vnf.pem"),
                config=cfg, env={**env, "FTRUST_KEY_PASSWORD": "vnf key pw"})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    pem = key.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem and key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TypeError):  # "Password was not given but private key is encrypted"
        serialization.load_pem_private_key(pem, None)
    private = serialization.load_pem_private_key(pem, b"vnf key pw")
    cert = x509.load_pem_x509_certificate((tmp_path / "vnf.pem").read_bytes())
    assert cert.public_key().public_numbers() == private.public_key().public_numbers()  # type: ignore[union-attr]
    # Plaintext only when asked for by a flag whose name says it is unsafe, and loudly.
    plain = tmp_path / "plain.key"
    unsafe = ftrust("ca", "issue", "--subject", "CN=vnf-y", "--generate-key", str(plain), "--unsafe-unencrypted-key",
                    config=cfg, env=env)  # fmt: skip
    assert unsafe.returncode == 0 and "UNENCRYPTED" in unsafe.stderr
    assert b"ENCRYPTED" not in plain.read_bytes()


CBC_AND_STATIC = "AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-GCM-SHA256"


def _tls12_handshake(port: int, ciphers: str) -> str | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
            cipher = s.cipher()
            return cipher[0] if cipher else None
    except ssl.SSLError:
        return None


def test_tls12_offers_only_ecdhe_with_aead_on_the_api_and_the_agent(deployment: World) -> None:
    agent = start_tls_agent(deployment)
    try:
        for port in (deployment.service.api.port, agent.server.port):
            assert _tls12_handshake(port, CBC_AND_STATIC) is None, port  # CBC and RSA key exchange refused
            chosen = _tls12_handshake(port, "ALL")
            assert chosen is not None and chosen.startswith("ECDHE-") and ("GCM" in chosen or "CHACHA20" in chosen)
    finally:
        agent.server.stop()


def test_the_vms_tls_certificate_is_not_a_ca(deployment: World) -> None:
    cert = x509.load_pem_x509_certificate(deployment.service.tls_certificate.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    served = ssl.get_server_certificate(("127.0.0.1", deployment.service.api.port))
    assert x509.load_pem_x509_certificate(served.encode()) == cert
    # and pinned as it is, it still authenticates the VM to admins and agents
    assert deployment.admin.hosts() is not None


def test_an_older_ca_true_tls_certificate_is_replaced(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from floodlight_trust.manager.tls import ensure_server_certificate
    from floodlight_trust.secrets import Secret

    password = Secret("pw", "test")
    directory = tmp_path / "vm-tls"
    directory.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")])
    now = datetime.now(UTC)
    old = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "server.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"pw"))
    )  # fmt: skip
    cert_path, _ = ensure_server_certificate(directory, ["127.0.0.1"], at=now, password=password)
    renewed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert renewed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
