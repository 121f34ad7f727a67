"""A whole deployment on loopback: CA, VM (HTTPS API + CRL/OCSP), agents with the sim backend.

``make_world`` builds it (the ``world`` fixtures of tests/manager and tests/security build one per
module: platform and CA key generation dominate the cost); each test uses fresh host and VNF names
so tests stay independent. The admin's CLI against it: ``admin_args``, ``vm_cli``, ``ca_cli``.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SIM_SIGNER, SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app, tls_context
from floodlight_trust.config import Config, from_mapping
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.manager.client import VmClient
from floodlight_trust.manager.service import VmService, build_service
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.secrets import Secret
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.statestore import open_state
from policy_lang import compile_policy_text
from tests.support.cli import ftrust
from tests.support.tls import self_signed

ADMIN_KEY_PASSWORD = Secret("alice's key password", "test")
PASSWORD = Secret("correct horse battery", "test")
GOOD_IMAGE = b"vnf-firewall enclave image: code v1.2 + config {rate: 100}\n"
INTEGRITY_IMAGE = b"floodlight-trust host integrity enclave v1\n"

HOST_FILES = {
    "boot_aggregate": hashlib.sha256(b"boot").digest(),
    "/usr/bin/containerd": hashlib.sha256(b"containerd").digest(),
    "/usr/bin/ftrust-agent": hashlib.sha256(b"agent").digest(),
    "/etc/ftrust/agent.toml": hashlib.sha256(b"agent config").digest(),
}


def ima_list(files: dict[str, bytes]) -> bytes:
    return "".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in files.items()).encode()


def policy_text() -> str:
    allow = "\n".join(f'    allow "{p}" digest in {{"{d.hex()}"}}' for p, d in HOST_FILES.items())
    return f"""
set vnf_signers = {{"{SIM_SIGNER.hex()}"}}
host test_host {{
    template in {{"ima-ng"}}
{allow}
    integrity_enclave = host_integrity
}}
enclave host_integrity {{
    identity: mrenclave in {{"{measure_enclave_image(INTEGRITY_IMAGE).hex()}"}}
    allow_simulated = true
}}
enclave firewall {{
    identity: mrenclave in {{"{measure_enclave_image(GOOD_IMAGE).hex()}"}} and mrsigner in vnf_signers
    debug: debug == false
    allow_simulated = true
}}
enroll fw for "vnf-fw-*" {{
    host = test_host
    enclave = firewall
    certificate {{
        subject = "CN={{vnf}},O=floodlight-trust"
        san_uri = ["urn:ftrust:vnf:{{vnf}}"]
        validity = 1h
    }}
}}
"""


def init_test_ca(config: Config) -> None:
    """The VNF CA in ``config``'s state directory, as `ftrust ca init` makes it."""
    db = open_state(config)  # the engine storage.url names (SQLite in state.dir by default)
    CertificateAuthority.init(
        config.state_path("ca", "dir"),
        PASSWORD,
        subject="CN=test VNF CA",
        crl_url=config.get("ca", "crl_url"),
        ocsp_url=config.get("ca", "ocsp_url"),
        at=clock.now(),
        records=db.certificates(),
    )
    db.close()


class FakeClock:
    """The VM's clock, which tests can move forward (nonce expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return clock.now() + self.offset


@dataclass
class Host:
    name: str
    backend: SimBackend
    agent: Agent
    server: HttpServer
    ima_file: Path
    admin: VmClient | None = None  # set when the host is registered: its VNFs are registered too

    @property
    def url(self) -> str:
        return self.server.url

    def add_vnf(self, vnf: str, image: bytes = GOOD_IMAGE, *, register: bool = True) -> EnclaveRuntime:
        """A VNF enclave on this host, registered with the VM as an admin would (host, name, rule)."""
        enclave = self.backend.add_enclave(vnf, image)
        if register and self.admin is not None:
            self.admin.add_vnf(self.name, vnf)
        return enclave


@dataclass
class World:
    tmp: Path
    service: VmService
    ca: CertificateAuthority
    platforms: list[SimulatedPlatform]
    admin: VmClient
    anonymous: VmClient
    clock: FakeClock
    hosts: list[Host] = field(default_factory=list)
    counter: int = 0

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:03d}"

    def start_host(
        self,
        *,
        platform: int = 0,
        files: dict[str, bytes] | None = None,
        register: bool = True,
        machine: SimulatedPlatform | None = None,
    ) -> Host:
        """A new host with its agent, on a machine of its own (a new PCK under simulated authority
        ``platform``: one platform belongs to one registered host) unless ``machine`` is given."""
        name = self.unique("host")
        ima_file = self.tmp / f"{name}.ima"
        ima_file.write_bytes(ima_list(files if files is not None else HOST_FILES))
        if machine is None:
            machine = SimulatedPlatform.create(self.tmp / f"{name}-platform", authority=self.platforms[platform])
        backend = SimBackend(machine, vm_ca=self.ca.certificate)
        agent = Agent(name, backend, ImaSource(None, ima_file))
        server = HttpServer(make_app(agent), host="127.0.0.1", port=0, threads=8, name=f"agent-{name}").start()
        host = Host(name, backend, agent, server, ima_file)
        self.hosts.append(host)
        if register:
            self.admin.add_host(name, host.url)
            host.admin = self.admin
        return host


def make_world(
    tmp: Path, *, crl_port: int | None = None, extra_policy: str = "", storage_url: str | None = None
) -> Iterator[World]:
    """A running deployment; with ``crl_port`` the CRL and OCSP are really served at the URLs the
    certificates name (``http://127.0.0.1:PORT/crl.der`` and ``/ocsp``). ``extra_policy`` is
    appended to the test policy (more enroll rules, e.g. with REST grants). ``storage_url`` puts the
    state on another engine (a PostgreSQL database of the throwaway cluster)."""
    base = f"http://127.0.0.1:{crl_port or 1}"
    platforms = [SimulatedPlatform.create(tmp / "platform-a"), SimulatedPlatform.create(tmp / "platform-b")]
    config = from_mapping(
        {
            "state": {"dir": str(tmp / "state")},
            **({"storage": {"url": storage_url}} if storage_url else {}),
            "ca": {"crl_url": f"{base}/crl.der", "ocsp_url": f"{base}/ocsp"},
            # The re-attestation loop is off here: tests run rounds themselves (test_reattest.py).
            "vm": {
                "port": 0,
                "crl_port": crl_port or 0,
                "trust_simulated_sgx": True,
                "nonce_ttl_seconds": 30,
                "reattest_interval_seconds": 0,
                # Renew at every round (>= the 1 h validity); test_rounds.py covers keeping certificates.
                "renew_before_seconds": 3600,
            },
        }
    )
    init_test_ca(config)
    fake = FakeClock()
    policy_file = tmp / "site.policy"  # what `reload-policy` reads again
    policy_file.write_text(policy_text() + extra_policy)
    policy = compile_policy_text(policy_text() + extra_policy)
    service = build_service(
        config,
        password=PASSWORD,
        policy=policy,
        anchors=[p.anchor() for p in platforms],
        now=fake.now,
        policy_path=policy_file,
    ).start()
    admin_password = ADMIN_KEY_PASSWORD
    cert, key = issue_admin_certificate(
        service.admin_ca, "alice", tmp / "admin", at=clock.now(), password=admin_password
    )
    admin = VmClient(
        service.api_url,
        server_certificate=service.tls_certificate,
        client_certificate=(str(cert), str(key)),
        client_key_password=admin_password,
    )
    anonymous = VmClient(service.api_url, server_certificate=service.tls_certificate)
    w = World(tmp, service, service.vm.ca, platforms, admin, anonymous, fake)
    try:
        yield w
    finally:
        admin.close()
        anonymous.close()
        for h in w.hosts:
            h.server.stop()
        service.stop()


ADMIN_KEY_ENV = {"FTRUST_ADMIN_KEY_PASSWORD": ADMIN_KEY_PASSWORD.reveal()}  # alice's key is encrypted at rest


def admin_args(world: World) -> list[str]:
    """The options that make an `ftrust vm ...` command talk to ``world``'s VM as the admin alice."""
    cert = world.tmp / "admin" / "alice.pem"
    return [
        "--vm-url",
        world.service.api_url,
        "--admin-cert",
        str(cert),
        "--admin-key",
        str(cert.with_suffix(".key")),
        "--vm-certificate",
        str(world.service.tls_certificate),
    ]


def vm_cli(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ftrust vm ...` against the running VM, as the admin alice."""
    return ftrust("vm", *argv, *admin_args(world), env=ADMIN_KEY_ENV)


def write_config(world: World) -> Path:
    """A config file for `ftrust` commands on the running VM's own state store (as on the VM host)."""
    path = world.tmp / "vm.toml"
    if not path.exists():
        vm = world.service.vm
        path.write_text(
            f"""[state]
dir = "{world.tmp / "state"}"
[ca]
crl_url = "{vm.ca.crl_url}"
ocsp_url = "{vm.ca.ocsp_url}"
"""
        )
    return path


def ca_cli(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ftrust ca ...` on the VM host's state (the CA password from the environment)."""
    return ftrust(
        "ca", *argv, config=write_config(world), env={**ADMIN_KEY_ENV, "FTRUST_CA_PASSWORD": PASSWORD.reveal()}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsAgent:
    name: str
    server: HttpServer
    certificate_pem: str
    enclaves: dict[str, EnclaveRuntime]


def start_tls_agent(
    world: World, vnfs: tuple[str, ...] = (), *, register: bool = True, prefix: str = "sec-host"
) -> TlsAgent:
    """A sim-backend agent serving HTTPS with a self-signed certificate, on a machine of its own;
    registered with the VM (its certificate pinned, then its VNFs) unless ``register`` is false."""
    name = world.unique(prefix)
    ima = world.tmp / f"{name}.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    machine = SimulatedPlatform.create(world.tmp / f"{name}-platform", authority=world.platforms[0])  # its own PCK
    backend = SimBackend(machine, vm_ca=world.ca.certificate)
    enclaves = {vnf: backend.add_enclave(vnf, GOOD_IMAGE) for vnf in vnfs}
    cert, key, pem = self_signed(world.tmp, name)
    server = HttpServer(
        make_app(Agent(name, backend, ImaSource(None, ima))),
        host="127.0.0.1",
        port=0,
        ssl_context=tls_context(cert, key),
        name="agent",
    ).start()
    if register:
        world.admin.add_host(name, server.url, agent_certificate=pem)
        for vnf in vnfs:
            world.admin.add_vnf(name, vnf)  # registered as an admin would (host, name)
    return TlsAgent(name, server, pem, enclaves)


def enrolled_vnf(world: World, directory: Path, vnf: str) -> tuple[Path, Path]:
    """Enroll ``vnf`` on a fresh sim host; its certificate and (enclave) key as PEM files."""
    host = world.start_host()
    enclave = host.add_vnf(vnf)
    result = world.admin.enroll(host.name, vnf)
    assert result["allowed"], result
    assert enclave.credentials is not None
    cert, key = directory / f"{vnf}.pem", directory / f"{vnf}.key"
    cert.write_text(enclave.credentials.chain_pem[0])
    identity = enclave.tls_identity()  # an in-process test enclave: the test plays the VNF's TLS stack
    assert identity is not None
    key.write_bytes(
        identity[1].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key
