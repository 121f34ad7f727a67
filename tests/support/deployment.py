"""One deployment builder for the VM tests that run the VM in process or as its own `vm serve`.

``Deployment(tmp, policy)`` makes what ``ftrust ca init`` and an operator make: a config file
(``tmp/ftrust.toml``, state in ``tmp/state``), the CA recorded in the state database, the policy
file and a simulated SGX platform; hosts with sim-backend agents are added with ``add_host``.
The VM then runs either

- in process (``deployment(tmp, policy, **vm_options)`` or ``start_in_process``): ``vm`` is a
  VerificationManager whose agents are called directly (``InProcessAgent`` counts what crosses the
  wire), for the workflow's decisions where the transport adds nothing; ``restart`` makes a new one
  over the same state; hosts are registered with it as an admin would; or
- as ``ftrust vm serve`` (``start_vm``, ``kill_vm``: SIGKILL), with the agents served over HTTP on
  loopback (``add_host(..., serve=True)``) and an admin client certificate for ``root``.

``rows(sql)`` reads the state database as it is on disk. ``close`` stops everything started.
The deployment with the VM's HTTP API in process is ``tests/support/world.py``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import INTEGRITY_ENCLAVE_IMAGE, SIM_SIGNER, SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.config import load
from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.manager.client import VmClient
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.statestore import open_admin_ca
from floodlight_trust.storage.sqlite import SqliteStorage
from policy_lang import compile_policy_text
from tests.support.cli import REPO, ftrust_command
from tests.support.world import PASSWORD

IMAGE = b"in-process test VNF image"
FILES = {
    "boot_aggregate": hashlib.sha256(b"boot").digest(),
    "/usr/bin/ftrust-agent": hashlib.sha256(b"agent").digest(),
    "/usr/bin/runc": hashlib.sha256(b"runc").digest(),
}


def line(path: str, digest: bytes) -> bytes:
    return format_ascii_line(make_entry(path, digest), "sha1").encode()


def policy_text(extra_host_rules: str = "") -> str:
    """Host ``h`` allowing ``FILES``, enclave ``e`` (``IMAGE`` by the sim signer), rule ``vnf-*``."""
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


class Deployment:
    def __init__(self, tmp: Path, policy: str | None = None, *, vm_settings: str = "") -> None:
        """The state of a VM in ``tmp`` with ``policy`` (``policy_text()`` by default);
        ``vm_settings`` are more lines of the config's ``[vm]`` table (for ``vm serve``)."""
        self.tmp = tmp
        self.platform = SimulatedPlatform.create(tmp / "platform")
        self.policy = policy or policy_text()
        (tmp / "site.policy").write_text(self.policy)
        self.config_path = tmp / "ftrust.toml"
        self.config_path.write_text(
            f"""
[state]
dir = "{tmp / "state"}"
[vm]
port = 0
crl_port = 0
policy = "site.policy"
trust_simulated_sgx = true
simulated_sgx_roots = "{tmp / "platform"}"
{vm_settings}
"""
        )
        self.config = load(self.config_path)
        self.db_path = self.config.state_dir / "ftrust.sqlite3"
        self.db = SqliteStorage(self.db_path)
        self.ca = CertificateAuthority.init(
            self.config.state_path("ca", "dir"),
            PASSWORD,
            subject="CN=test CA",
            crl_url=self.config.get("ca", "crl_url"),
            ocsp_url=self.config.get("ca", "ocsp_url"),
            at=clock.now(),
            records=self.db.certificates(),
        )
        self.vm: VerificationManager | None = None
        self.agents: dict[str, InProcessAgent] = {}
        self.ima_files: dict[str, Path] = {}
        self.backends: dict[str, SimBackend] = {}
        self.servers: dict[str, HttpServer] = {}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._admin: tuple[Path, Path] | None = None

    # -- hosts ---------------------------------------------------------------------------------
    def add_host(
        self, name: str, files: dict[str, bytes] = FILES, *vnfs: str, image: bytes = IMAGE, serve: bool = False
    ) -> InProcessAgent:
        """A host with a sim-backend agent measuring ``files`` and running ``vnfs`` (``image``);
        served over HTTP when ``serve``; registered with the in-process VM, when there is one."""
        path = self.tmp / f"{name}.ima"
        path.write_bytes(b"".join(line(p, d) for p, d in files.items()))
        backend = SimBackend(self.platform, vm_ca=self.ca.certificate)
        for v in vnfs:
            backend.add_enclave(v, image)
        agent = Agent(name, backend, ImaSource(None, path))
        self.agents[name] = InProcessAgent(agent)
        self.ima_files[name] = path
        self.backends[name] = backend
        if serve:
            self.servers[name] = HttpServer(
                make_app(agent), host="127.0.0.1", port=0, threads=8, name=f"agent-{name}"
            ).start()
        if self.vm is not None:
            self.vm.storage.hosts.add(name, f"inproc://{name}", None, at=clock.now())
            for v in vnfs:  # registered as an admin would
                self.vm.register_vnf(name, v, actor="admin:test")
        return self.agents[name]

    def append(self, host: str, path: str, digest: bytes) -> None:
        """One more measurement in ``host``'s IMA list."""
        with self.ima_files[host].open("ab") as fh:
            fh.write(line(path, digest))

    # -- the VM in process -----------------------------------------------------------------------
    def start_in_process(self, **kwargs: Any) -> VerificationManager:
        """A VerificationManager on this state whose agents are called directly."""
        self.vm = VerificationManager(
            storage=self.db,
            ca=self.ca,
            policy=compile_policy_text(self.policy),
            anchors=[self.platform.anchor()],
            connect=lambda record: self.agents[record.name],
            **kwargs,
        )
        return self.vm

    def restart(self, **kwargs: Any) -> VerificationManager:
        """A new VerificationManager over the same state (what a VM restart keeps)."""
        assert self.vm is not None, "start_in_process() first"
        self.vm = VerificationManager(
            storage=self.vm.storage,
            ca=self.vm.ca,
            policy=self.vm.policy,
            anchors=self.vm.anchors,
            connect=lambda record: self.agents[record.name],
            **kwargs,
        )
        return self.vm

    # -- the VM as `ftrust vm serve` -------------------------------------------------------------
    def start_vm(self, *argv: str) -> VmClient:
        """Start ``ftrust vm serve ARGV`` on this state; an admin client of it once it listens."""
        if self._admin is None:
            admin_ca = open_admin_ca(self.config, PASSWORD, self.db, create_at=clock.now())
            self._admin = issue_admin_certificate(
                admin_ca, "root", self.tmp / "admin", at=clock.now(), password=PASSWORD
            )
        self.proc = subprocess.Popen(
            ftrust_command("vm", "serve", *argv, config=self.config_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env={**os.environ, "FTRUST_CA_PASSWORD": PASSWORD.reveal()},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("Verification Manager API on https://localhost:"), first
        self.url = first.split()[4]
        return VmClient(
            self.url,
            server_certificate=self.config.state_dir / "vm-tls" / "server.pem",
            client_certificate=(str(self._admin[0]), str(self._admin[1])),
            client_key_password=PASSWORD,
        )

    def kill_vm(self) -> None:
        """SIGKILL the `vm serve` process: no cleanup of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def rows(self, sql: str) -> list[sqlite3.Row]:
        """``sql`` on the state database as another process sees it."""
        con = sqlite3.connect(self.db_path, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return list(con.execute(sql))
        finally:
            con.close()

    def close(self) -> None:
        if self.proc is not None:
            self.kill_vm()
        for server in self.servers.values():
            server.stop()
        self.db.close()


def deployment(tmp: Path, policy: str | None = None, **kwargs: Any) -> Deployment:
    """A deployment with its VM in process (``kwargs`` are VerificationManager options)."""
    d = Deployment(tmp, policy)
    d.start_in_process(**kwargs)
    return d
