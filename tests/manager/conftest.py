"""A whole deployment on loopback: CA, VM (HTTPS API + CRL/OCSP), agents with the sim backend.

Built once per module (platform and CA key generation dominate the cost); each test uses fresh
host and VNF names so tests stay independent.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from floodlight_trust import clock, protocol
from floodlight_trust.agent.backends.sim import SIM_SIGNER, SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.config import Config, from_mapping
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.manager.client import AgentClient, VmClient
from floodlight_trust.manager.service import VmService, build_service
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.secrets import Secret
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.statestore import open_state
from policy_lang import compile_policy_text

# Tests also check what each side sends (production checks what it receives): docs/protocol.md.
protocol.CHECK_OUTBOUND = True
os.environ["FTRUST_CHECK_OUTBOUND"] = "1"  # the same for services started as subprocesses

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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("vm"))


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
    cert, key = issue_admin_certificate(service.admin_ca, "alice", tmp / "admin", at=clock.now(), password=admin_password)
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


__all__ = ["GOOD_IMAGE", "HOST_FILES", "AgentClient", "World", "ima_list"]
