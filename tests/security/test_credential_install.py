"""Issue 11, item 4: unauthenticated credential install.

The attack: anyone reaching the agent's ``POST /v1/vnfs/{vnf}/credentials`` installed a self-signed
chain, and an attacker's key wrapped to the enclave's public key became the VNF's key. Now the VNF's
own enclave (a separate process, ``ftrust enclave serve``) judges what the agent relays: the chain
must verify to the VM CA the enclave pins (a file of its image, so part of its MRENCLAVE), the leaf
must certify the enclave's own key, and a wrapped key must carry the VM's provisioning signature
(pinned CA key) bound to a nonce this enclave quoted over. Every attack below goes over real HTTPS
to the agent on loopback and must be refused with the enclave's reason, the enclave keeping the
credentials it had.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app, tls_context
from floodlight_trust.errors import VerificationError
from floodlight_trust.http.server import HttpServer
from floodlight_trust.protocol.binding import key_report_data
from floodlight_trust.protocol.keywrap import wrap_private_key
from floodlight_trust.protocol.provisioning import provisioning_statement, sign_statement
from tests.support.enclaves import EnclaveProcess, enclave_policy, make_image, start_enclave, write_enclave_config
from tests.support.tls import self_signed
from tests.support.world import HOST_FILES, World, ima_list, make_world, policy_text

VNF = "vnf-proc-a"
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Target:
    world: World
    host: str
    agent_url: str
    agent_pem: Path
    enclave: EnclaveProcess
    legit: dict[str, Any]  # the VM's enrollment document of the legitimate install

    def post(self, message: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.agent_url}/v1/vnfs/{VNF}/credentials", json=message, verify=str(self.agent_pem), timeout=30
        )

    def installed(self) -> str | None:
        sha: str | None = self.enclave.info()["certificate_sha256"]
        return sha

    def rows(self) -> list[dict[str, Any]]:
        return [e for e in self.world.admin.enrollments() if e["vnf"] == VNF]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("install-attack")
    worlds = make_world(tmp)
    world = next(worlds)
    procs: list[EnclaveProcess] = []
    server = None
    try:
        mrenclave = make_image(tmp / "image", world.ca.certificate_pem)
        (tmp / "site.policy").write_text(policy_text() + enclave_policy(mrenclave))
        assert world.admin.reload_policy(dry_run=False)
        sockets = tmp / "sockets"
        platform = world.platforms[0]
        config = write_enclave_config(tmp / "enclaves", VNF, tmp / "image", platform.directory, sockets)
        procs.append(start_enclave(config, VNF, sockets))
        name = world.unique("https-host")
        ima = tmp / f"{name}.ima"
        ima.write_bytes(ima_list(HOST_FILES))
        cert, key, pem = self_signed(tmp, name)
        agent = Agent(name, SimBackend(platform, socket_dir=sockets), ImaSource(None, ima))
        server = HttpServer(
            make_app(agent), host="127.0.0.1", port=0, ssl_context=tls_context(cert, key), name="agent"
        ).start()
        world.admin.add_host(name, server.url, agent_certificate=pem)
        world.admin.add_vnf(name, VNF)  # its identity, as an admin registers it
        legit = world.admin.enroll(name, VNF)
        assert legit["allowed"], legit["reasons"]
        yield Target(world, name, server.url, cert, procs[0], legit)
    finally:
        for p in procs:
            p.stop()
        if server is not None:
            server.stop()
        worlds.close()


def attacker_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    # The same subject as a VM CA would have: names prove nothing, signatures do.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test VNF CA")])
    now = clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def attacker_leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, public_key: Any) -> x509.Certificate:
    now = clock.now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, VNF)]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def pem(*certs: x509.Certificate) -> list[str]:
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]


def message(t: Target, chain: list[str], wrapped: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"host": t.host, "vnf": VNF, "serial": "1", "certificate_chain": chain, "wrapped_key": wrapped, **extra}


def refusal(response: requests.Response) -> str:
    assert response.status_code == 403, (response.status_code, response.text)
    text: str = response.json()["error"]["message"]
    assert text.startswith(f"enclave of {VNF} refused the credentials: "), text
    return text


def enclave_public_key(t: Target) -> Any:
    return serialization.load_der_public_key(base64.b64decode(t.enclave.info()["public_key"]))


def test_a_self_signed_chain_for_the_enclave_key_is_refused_by_the_enclave(target: Target) -> None:
    before, rows = target.installed(), target.rows()
    assert before is not None
    ca_key, ca = attacker_ca()
    leaf = attacker_leaf(ca_key, ca, enclave_public_key(target))
    text = refusal(target.post(message(target, pem(leaf, ca))))
    assert "enclave.credentials.chain: the leaf certificate" in text
    assert "is not issued by the pinned VM CA" in text
    assert target.installed() == before  # the enclave kept the VM's credentials
    assert target.rows() == rows  # and the VM recorded nothing


def test_an_attackers_wrapped_key_is_refused_by_the_enclave(target: Target) -> None:
    before = target.installed()
    ca_key, ca = attacker_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = attacker_leaf(ca_key, ca, key.public_key())
    enclave_spki = enclave_public_key(target).public_bytes(*SPKI)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    wrapped = wrap_private_key(der, enclave_spki, context=f"vnf:{VNF}".encode())
    # Without a provisioning signature: the wrapped key is not authenticated as the VM's.
    text = refusal(target.post(message(target, pem(leaf, ca), wrapped.to_json())))
    assert "enclave.credentials.provisioning: a wrapped key without the VM's provisioning signature" in text
    assert "is not issued by the pinned VM CA" in text
    # With a provisioning block the attacker signed himself, over a nonce of his choosing.
    nonce = os.urandom(32)
    statement = provisioning_statement(
        nonce=nonce,
        vnf=VNF,
        enclave_spki=enclave_spki,
        leaf_der=leaf.public_bytes(serialization.Encoding.DER),
        wrapped=wrapped,
    )
    forged = {"nonce": nonce.hex(), "signature": base64.b64encode(sign_statement(ca_key, statement)).decode()}
    text = refusal(target.post(message(target, pem(leaf, ca), wrapped.to_json(), provisioning=forged)))
    assert "is not one this enclave quoted over" in text
    assert "does not verify with the pinned VM CA key" in text
    assert target.installed() == before


def test_a_genuine_vm_chain_with_an_attackers_wrapped_key_is_refused(target: Target) -> None:
    """The VM's chain is no secret (the controller sees it); the attacker pairs it with his key."""
    before = target.installed()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    wrapped = wrap_private_key(der, enclave_public_key(target).public_bytes(*SPKI), context=f"vnf:{VNF}".encode())
    captured = target.legit["provisioning"]  # the VM's real signature from the legitimate install
    text = refusal(
        target.post(message(target, target.legit["certificate_chain"], wrapped.to_json(), provisioning=captured))
    )
    assert "enclave.credentials.provisioning: the provisioning signature does not verify" in text
    assert "enclave.credentials.wrapped_key: the wrapped key is not the private key of the leaf" in text
    assert target.installed() == before


def test_replayed_vm_credentials_are_refused_after_a_renewal(target: Target) -> None:
    """An old, genuine credentials message (captured on the host) must not roll the enclave back."""
    old = target.legit
    renewed = target.world.admin.enroll(target.host, VNF)
    assert renewed["allowed"], renewed["reasons"]
    current = target.installed()
    assert current is not None and current != old.get("certificate_sha256")
    replay = {
        "host": target.host,
        "vnf": VNF,
        "serial": old["serial"],
        "certificate_chain": old["certificate_chain"],
        "wrapped_key": None,
        "provisioning": old["provisioning"],
    }
    text = refusal(target.post(replay))
    assert "enclave.credentials.provisioning: nonce" in text and "not one this enclave quoted over" in text
    assert target.installed() == current


def test_a_compromised_agent_cannot_get_a_vnf_quote_over_a_key_of_its_choosing(target: Target) -> None:
    """The enclave computes REPORTDATA from the nonce and ITS OWN key: a relaying agent can neither
    pass report data in nor pair the enclave's quote with its own key."""
    attacker = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*SPKI)
    nonce = target.world.anonymous.nonce("enclave", target.host, VNF)
    # 1. Report data of the agent's choosing is not part of the channel's protocol.
    request = {"op": "evidence", "nonce": nonce.hex(), "report_data": key_report_data(nonce, attacker).hex()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(target.enclave.socket))
        s.sendall(json.dumps(request).encode() + b"\n")
        with s.makefile("rb") as f:
            answer = json.loads(f.readline())
    assert answer["ok"] is False and "invalid enclave_request message" in answer["error"]["message"]
    # 2. The enclave's genuine quote, relabelled with the agent's key, does not bind it: refused.
    quote = target.enclave.channel.evidence(nonce)
    rows = target.rows()
    evidence = {
        "host": target.host,
        "vnf": VNF,
        "nonce": nonce.hex(),
        "evidence_type": quote["evidence_type"],
        "quote": quote["quote"],
        "collateral": quote["collateral"],
        "public_key": base64.b64encode(attacker).decode(),
    }
    with pytest.raises(VerificationError, match="REPORTDATA"):
        target.world.anonymous.submit_enclave_evidence(evidence)
    assert target.rows() == rows  # no certificate for the agent's key
