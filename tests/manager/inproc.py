"""An in-process deployment (no HTTP): a VerificationManager whose agents are called directly.

For tests of the workflow's decisions where the transport adds nothing (reason levels, renewal,
incremental IMA transfer, platform pinning); the HTTP paths are covered with the ``world`` fixture.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import INTEGRITY_ENCLAVE_IMAGE, SIM_SIGNER, SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent
from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.secrets import Secret
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.storage.sqlite import SqliteStorage
from policy_lang import compile_policy_text

IMAGE = b"in-process test VNF image"
FILES = {
    "boot_aggregate": hashlib.sha256(b"boot").digest(),
    "/usr/bin/ftrust-agent": hashlib.sha256(b"agent").digest(),
    "/usr/bin/runc": hashlib.sha256(b"runc").digest(),
}


def line(path: str, digest: bytes) -> bytes:
    return format_ascii_line(make_entry(path, digest), "sha1").encode()


def policy_text(extra_host_rules: str = "") -> str:
    allow = "\n".join(f'    allow "{p}" digest in {{"{d.hex()}"}}' for p, d in FILES.items())
    # The sim backend's integrity enclave, unless the caller names its own.
    integrity = "" if "integrity_enclave" in extra_host_rules else "    integrity_enclave = host_integrity"
    return f"""
host h {{
    template in {{"ima-ng"}}
{allow}
{extra_host_rules}
{integrity}
}}
enclave host_integrity {{
    identity: mrenclave in {{"{measure_enclave_image(INTEGRITY_ENCLAVE_IMAGE).hex()}"}}
    allow_simulated = true
}}
enclave e {{
    identity: mrenclave in {{"{measure_enclave_image(IMAGE).hex()}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
    allow_simulated = true
}}
enroll r for "vnf-*" {{ host = h  enclave = e  certificate {{ validity = 1h }} }}
"""


class InProcessAgent:
    """``AgentConnection`` over an in-process ``Agent``; counts what crosses the wire."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.ima_bytes_sent: list[int] = []
        self.fail = False

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> dict[str, Any]:
        doc = dict(self.agent.host_evidence(nonce, ima_offset))
        self.ima_bytes_sent.append(len(base64.b64decode(doc["ima_list"])))
        return doc

    def enclave_evidence(self, vnf: str, nonce: bytes) -> dict[str, Any]:
        return dict(self.agent.enclave_evidence(vnf, nonce))

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]:
        return dict(self.agent.install(vnf, message))


@dataclass
class Deployment:
    tmp: Path
    vm: VerificationManager
    platform: SimulatedPlatform
    agents: dict[str, InProcessAgent]
    ima_files: dict[str, Path]
    backends: dict[str, SimBackend]

    def add_host(self, name: str, files: dict[str, bytes] = FILES, *vnfs: str) -> InProcessAgent:
        path = self.tmp / f"{name}.ima"
        path.write_bytes(b"".join(line(p, d) for p, d in files.items()))
        backend = SimBackend(self.platform, vm_ca=self.vm.ca.certificate)
        for v in vnfs:
            backend.add_enclave(v, IMAGE)
        self.agents[name] = InProcessAgent(Agent(name, backend, ImaSource(None, path)))
        self.ima_files[name] = path
        self.backends[name] = backend
        self.vm.storage.hosts.add(name, f"inproc://{name}", None, at=clock.now())
        for v in vnfs:  # registered as an admin would
            self.vm.register_vnf(name, v, actor="admin:test")
        return self.agents[name]

    def append(self, host: str, path: str, digest: bytes) -> None:
        with self.ima_files[host].open("ab") as fh:
            fh.write(line(path, digest))

    def restart(self, **kwargs: Any) -> VerificationManager:
        """A new VerificationManager over the same state (what a VM restart keeps)."""
        self.vm = VerificationManager(
            storage=self.vm.storage,
            ca=self.vm.ca,
            policy=self.vm.policy,
            anchors=self.vm.anchors,
            connect=lambda record: self.agents[record.name],
            **kwargs,
        )
        return self.vm


def deployment(tmp: Path, policy: str | None = None, **kwargs: Any) -> Deployment:
    platform = SimulatedPlatform.create(tmp / "platform")
    db = SqliteStorage(tmp / "state.sqlite3")
    ca = CertificateAuthority.init(
        tmp / "ca",
        Secret("in-process test password", "test"),
        subject="CN=test CA",
        crl_url="http://127.0.0.1:9/crl.der",
        ocsp_url="http://127.0.0.1:9/ocsp",
        at=clock.now(),
        records=db.certificates(),
    )
    agents: dict[str, InProcessAgent] = {}
    vm = VerificationManager(
        storage=db,
        ca=ca,
        policy=compile_policy_text(policy or policy_text()),
        anchors=[platform.anchor()],
        connect=lambda record: agents[record.name],
        **kwargs,
    )
    return Deployment(tmp, vm, platform, agents, {}, {})
