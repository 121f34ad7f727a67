"""VM -> agent over HTTPS: the agent serves TLS with its own certificate, the VM pins it per host."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app, tls_context
from floodlight_trust.http.server import HttpServer

from .conftest import HOST_FILES, World, ima_list


def self_signed(tmp: Path, name: str) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path, pem.decode()


def tls_agent(world: World, platform: int = 0) -> tuple[str, HttpServer, str]:
    name = world.unique("tls-host")
    ima = world.tmp / f"{name}.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    backend = SimBackend(world.platforms[platform], vm_ca=world.ca.certificate)
    backend.add_enclave("vnf-fw-tls", b"vnf-firewall enclave image: code v1.2 + config {rate: 100}\n")
    cert, key, pem = self_signed(world.tmp, name)
    server = HttpServer(
        make_app(Agent(name, backend, ImaSource(None, ima))),
        host="127.0.0.1",
        port=0,
        ssl_context=tls_context(cert, key),
        name=f"agent-{name}",
    ).start()
    return name, server, pem


def test_vm_reaches_an_https_agent_through_its_pinned_certificate(world: World) -> None:
    name, server, pem = tls_agent(world)
    try:
        assert server.url.startswith("https://")
        world.admin.add_host(name, server.url, agent_certificate=pem)
        world.admin.add_vnf(name, "vnf-fw-tls")
        verdict = world.admin.attest(name)
        assert verdict["trusted"], verdict["reasons"]
        doc = world.admin.enroll(name, "vnf-fw-tls")
        assert doc["allowed"], doc["reasons"]
    finally:
        server.stop()


def test_an_agent_with_another_certificate_than_the_pinned_one_is_not_trusted(world: World) -> None:
    name, server, _ = tls_agent(world)
    _, _, other_pem = self_signed(world.tmp, "someone-else")
    try:
        world.admin.add_host(name, server.url, agent_certificate=other_pem)
        verdict = world.admin.attest(name)
        assert not verdict["trusted"]
        assert any(r["rule"] == "agent.unreachable" and "TLS" in r["message"] for r in verdict["reasons"]), verdict
    finally:
        server.stop()
