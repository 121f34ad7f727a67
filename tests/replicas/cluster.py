"""Several `ftrust vm serve` processes on one state database, and agents for them (sim backend).

The replicas are real processes (``python -m floodlight_trust vm serve``) started from one config
file with free ports; the agents run in the test process over HTTP on loopback. Each replica has
an admin client and an anonymous (agent-facing) client. Everything started is stopped by
:meth:`Cluster.close`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.config import load
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.client import VmClient
from floodlight_trust.pki.ca import CertificateAuthority, load_ca_certificate
from floodlight_trust.sgxsim import SimulatedPlatform
from floodlight_trust.statestore import open_ca, open_state
from floodlight_trust.storage.stores import Storage
from tests.support import cli
from tests.support.world import GOOD_IMAGE, HOST_FILES, PASSWORD, ima_list, policy_text

DB_PASSWORD = "FTRUST_DB_PASSWORD"  # storage.password_env's default


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; its value. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[str]
    api_url: str
    publish_url: str
    admin: VmClient
    anonymous: VmClient
    server_certificate: Path
    output: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind (leases stay held, transactions in flight are cut)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_clients()

    def stop(self) -> int:
        if self.alive:
            self.proc.terminate()
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(timeout=30)
        else:
            code = self.proc.returncode
        self._close_clients()
        return code

    def _close_clients(self) -> None:
        self.admin.close()
        self.anonymous.close()

    def crl(self) -> requests.Response:
        return requests.get(self.publish_url + "/crl.der", timeout=10)

    def health(self) -> requests.Response:
        return requests.get(self.api_url + "/v1/health", verify=str(self.server_certificate), timeout=10)


@dataclass
class Host:
    name: str
    backend: SimBackend
    agent: Agent
    server: HttpServer
    asked: list[float] = field(default_factory=list)  # time.monotonic() of each host evidence request

    def attestations(self, since: float) -> list[float]:
        return [t for t in list(self.asked) if t >= since]

    @property
    def url(self) -> str:
        return self.server.url


class Cluster:
    """One deployment (CA, admin CA, policy, simulated platform) served by several replicas."""

    def __init__(
        self,
        tmp: Path,
        *,
        reattest_interval: float = 0,
        extra_config: str = "",
        database_url: str = "",
        env: dict[str, str] | None = None,
        connect_timeout_seconds: int | None = None,
    ):
        """``database_url`` (no password in it: ``env`` carries FTRUST_DB_PASSWORD) puts the state on
        PostgreSQL; ``connect_timeout_seconds`` is its storage setting (how long a request waits for
        a database connection before its 503)."""
        self.tmp = tmp
        self.database_url = database_url
        self.env = env or {}
        self.platform = SimulatedPlatform.create(tmp / "platform")
        (tmp / "site.policy").write_text(policy_text())
        (tmp / "host.ima").write_bytes(ima_list(HOST_FILES))
        storage = f'[storage]\nurl = "{database_url}"\n' if database_url else ""
        if connect_timeout_seconds is not None:
            storage += f"{'' if database_url else '[storage]'}\nconnect_timeout_seconds = {connect_timeout_seconds}\n"
        self.config_path = tmp / "ftrust.toml"
        self.config_path.write_text(
            f"""
{storage}[state]
dir = "{tmp / "state"}"
[vm]
port = 0
crl_port = 0
policy = "site.policy"
trust_simulated_sgx = true
simulated_sgx_roots = "{tmp / "platform"}"
renew_before_seconds = 3600
revocation_poll_seconds = 0.2
{extra_config}
"""
        )
        self.config = load(self.config_path)
        # As an operator sets a deployment up: `ftrust ca init`, `ftrust vm admin-cert` (any engine).
        self.ftrust("ca", "init", "--subject", "CN=replica test CA")
        self.ftrust("vm", "admin-cert", "root", "--out", str(tmp / "admin"))
        self.admin_cert, self.admin_key = tmp / "admin" / "root.pem", tmp / "admin" / "root.key"
        self.ca_certificate = load_ca_certificate(self.config.state_path("ca", "dir"))
        self.reattest_interval = reattest_interval
        self.replicas: list[Replica] = []
        self.hosts: list[Host] = []
        self._opened: list[Storage] = []
        self._count = 0

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "FTRUST_CA_PASSWORD": PASSWORD.reveal(),
                "FTRUST_ADMIN_KEY_PASSWORD": PASSWORD.reveal()}  # fmt: skip

    def ftrust(self, *argv: str) -> str:
        r = cli.ftrust(*argv, config=self.config_path, env=self.process_env(), timeout=120)
        assert r.returncode == 0, f"ftrust {' '.join(argv)}: {r.stderr}"
        return r.stdout

    # -- replicas --------------------------------------------------------------------------------
    def start_replica(
        self, name: str, *, reattest_interval: float | None = None, database_url: str | None = None
    ) -> Replica:
        """``database_url``: this replica reaches the shared database at another address (a proxy
        the test can cut), with a config of its own that differs from the deployment's only there."""
        interval = self.reattest_interval if reattest_interval is None else reattest_interval
        config = self.config_path
        if database_url is not None:
            config = self.tmp / f"ftrust-{name}.toml"
            text = self.config_path.read_text()
            assert self.database_url and f'url = "{self.database_url}"' in text
            config.write_text(text.replace(f'url = "{self.database_url}"', f'url = "{database_url}"'))
        proc = subprocess.Popen(
            cli.ftrust_command("vm", "serve", "--reattest-interval", interval, config=config),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cli.REPO,
            env=self.process_env(),
        )  # fmt: skip
        assert proc.stdout is not None
        lines: list[str] = []
        api = publish = ""
        deadline = time.monotonic() + 60
        while not (api and publish):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"replica {name} exited: {''.join(lines)}"
            assert time.monotonic() < deadline, f"replica {name} did not start: {''.join(lines)}"
            lines.append(line)
            if line.startswith("Verification Manager API on "):
                api = line.split()[4]
            elif line.startswith("CRL and OCSP on "):
                publish = line.split()[4]
        # Keep draining its output so the replica never blocks on a full pipe.
        threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True).start()
        server = self.tmp / "state" / "vm-tls" / "server.pem"
        admin = VmClient(
            api, server_certificate=server, client_certificate=(str(self.admin_cert), str(self.admin_key)),
            client_key_password=PASSWORD,
        )  # fmt: skip
        replica = Replica(name, proc, api, publish, admin, VmClient(api, server_certificate=server), server, lines)
        self.replicas.append(replica)
        return replica

    # -- hosts -----------------------------------------------------------------------------------
    def unique(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{os.getpid() % 1000}-{self._count:03d}"

    def start_host(self, *, host_evidence_delay: float = 0.0) -> Host:
        """A host with its agent on a machine of its own (a PCK of the cluster's simulated authority)."""
        name = self.unique("host")
        machine = SimulatedPlatform.create(self.tmp / f"{name}-platform", authority=self.platform)
        backend = SimBackend(machine, vm_ca=self.ca_certificate)
        ima = self.tmp / f"{name}.ima"
        ima.write_bytes(ima_list(HOST_FILES))
        agent = Agent(name, backend, ImaSource(None, ima))
        asked: list[float] = []
        evidence = agent.host_evidence

        def observed(*args: Any, **kw: Any) -> Any:
            asked.append(time.monotonic())  # when a VM asked this host for evidence (an attestation)
            if host_evidence_delay:  # a round takes a while: a kill lands inside it
                time.sleep(host_evidence_delay)
            return evidence(*args, **kw)

        agent.host_evidence = observed  # type: ignore[method-assign]
        server = HttpServer(make_app(agent), host="127.0.0.1", port=0, threads=16, name=f"agent-{name}").start()
        host = Host(name, backend, agent, server, asked)
        self.hosts.append(host)
        return host

    def add_vnf(self, host: Host, vnf: str) -> None:
        host.backend.add_enclave(vnf, GOOD_IMAGE)

    # -- the shared state, read directly -----------------------------------------------------------
    @contextmanager
    def _deployment_env(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # the database password, as the processes of the deployment get it
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def open_storage(self) -> Storage:
        """The shared state as every process of the deployment opens it (storage.url of the config)."""
        with self._deployment_env():
            storage = open_state(self.config)
        self._opened.append(storage)
        return storage

    def open_ca(self) -> CertificateAuthority:
        """The VNF CA on the shared state, as `ftrust ca` opens it (another process of the deployment)."""
        return open_ca(self.config, PASSWORD, self.open_storage())

    def controller_credential(self, name: str) -> tuple[str, str]:
        """A controller's client certificate and (unencrypted, test-only) key for the revocation stream."""
        from floodlight_trust.manager.revocation_feed import issue_controller_credential

        ca = self.open_ca()
        out = self.tmp / "controllers"
        p12, _ = issue_controller_credential(ca, name, out, at=clock.now(), password=PASSWORD)
        key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), PASSWORD.reveal_bytes())
        assert key is not None and cert is not None
        cert_path, key_path = out / f"{name}.cert.pem", out / f"{name}.key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return str(cert_path), str(key_path)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the shared database, read directly (what is really on disk, not what a replica says)."""
        if self.database_url:
            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.database_url, row_factory=dict_row, **self._password()) as conn:
                return [dict(r) for r in conn.execute(sql.encode())]
        import sqlite3

        con = sqlite3.connect(self.tmp / "state" / "ftrust.sqlite3", timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql)]
        finally:
            con.close()

    def _password(self) -> dict[str, str]:
        return {"password": self.env[DB_PASSWORD]} if DB_PASSWORD in self.env else {}

    def close(self) -> None:
        for r in self.replicas:
            if r.alive:
                r.kill()
        for h in self.hosts:
            h.server.stop()
        for storage in self._opened:
            storage.close()
