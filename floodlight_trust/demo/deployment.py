"""The demo's deployment: a CA, the VM, one container host's agent and the controller, on loopback.

Everything lives in one temporary directory and every process started here is stopped on exit,
whatever happened. Passwords are random, handed to child processes in their environment (never
on a command line) and never printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from floodlight_trust.errors import InternalError, ServiceError
from floodlight_trust.secrets import Secret

DEMO_ASSETS = Path(__file__).resolve().parents[2] / "configs" / "demo"
HOST = "container-host-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assets_dir() -> Path:
    """configs/demo from the source tree (the demo's embedded defaults)."""
    if not (DEMO_ASSETS / "demo.policy").exists():
        raise InternalError(f"demo assets not found at {DEMO_ASSETS}", hint="run ftrust demo from a source checkout")
    return DEMO_ASSETS


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


@dataclass
class Deployment:
    root: Path
    ca_password: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(24), "generated"))
    keystore_password: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(18), "generated"))
    admin_key_password: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(18), "generated"))
    controller_key_password: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(18), "generated"))
    vm_port: int = field(default_factory=free_port)
    crl_port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    reattest_interval: int = 2
    processes: list[Process] = field(default_factory=list)
    endpoints: list[Any] = field(default_factory=list)
    # Replicas: several `vm serve` on one database (database_url, or the shared SQLite file), each on
    # ports of its own behind a TCP front on vm_port and crl_port (demo/balancer.py).
    replicas: int = 1
    database_url: str = ""
    replica_ports: list[tuple[int, int]] = field(default_factory=list)

    # -- layout ------------------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def vm_config(self) -> Path:
        return self.root / "vm.toml"

    def replica_config(self, index: int) -> Path:
        """The config of replica ``index`` (1-based): vm.toml with the replica's own ports."""
        return self.root / f"vm-replica-{index}.toml"

    @property
    def agent_config(self) -> Path:
        return self.root / "agent.toml"

    @property
    def ima_log(self) -> Path:
        return self.root / "host" / "ima" / "ascii_runtime_measurements"

    @property
    def platform_dir(self) -> Path:
        return self.root / "host" / "sgx-platform"

    @property
    def socket_dir(self) -> Path:
        return self.root / "host" / "enclave-sockets"

    def enclave_config(self, vnf: str) -> Path:
        return self.root / f"enclave-{vnf}.toml"

    def image_dir(self, vnf: str) -> Path:
        return self.root / "host" / "vnfs" / vnf

    @property
    def vm_url(self) -> str:
        return f"https://127.0.0.1:{self.vm_port}"

    @property
    def vm_certificate(self) -> Path:
        return self.state / "vm-tls" / "server.pem"

    @property
    def admin_certificate(self) -> tuple[str, str]:
        return str(self.state / "admin" / "admin.pem"), str(self.state / "admin" / "admin.key")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FTRUST_CA_PASSWORD"] = self.ca_password.reveal()
        env["FTRUST_KEYSTORE_PASSWORD"] = self.keystore_password.reveal()
        env["FTRUST_ADMIN_KEY_PASSWORD"] = self.admin_key_password.reveal()
        env["FTRUST_CONTROLLER_KEY_PASSWORD"] = self.controller_key_password.reveal()
        env.pop("REQUESTS_CA_BUNDLE", None)
        return env

    # -- files -------------------------------------------------------------------------------------
    def write_files(self) -> None:
        assets = assets_dir()
        (self.root / "policy").mkdir(parents=True)
        shutil.copy(assets / "demo.policy", self.root / "policy" / "demo.policy")
        shutil.copytree(assets / "reference", self.root / "policy" / "reference")
        shutil.copytree(assets / "vnfs", self.root / "host" / "vnfs")
        self.ima_log.parent.mkdir(parents=True)
        shutil.copy(assets / "host-ima.log", self.ima_log)
        crl = f"http://127.0.0.1:{self.crl_port}"
        storage = f'[storage]\nurl = "{self.database_url}"\n\n' if self.database_url else ""
        vm_toml = f"""# written by ftrust demo
{storage}[state]
dir = "state"

[ca]
subject = "CN=floodlight-trust demo VNF CA"
crl_url = "{crl}/crl.der"
ocsp_url = "{crl}/ocsp"
crl_next_update_seconds = 60
certificate_validity_seconds = 3600

[vm]
host = "127.0.0.1"
port = {self.vm_port}
crl_port = {self.crl_port}
policy = "policy/demo.policy"
trust_simulated_sgx = true              # the demo runs the sim backend: NEVER in production
simulated_sgx_roots = "host/sgx-platform"
reattest_interval_seconds = {self.reattest_interval}
grace_period_seconds = 10

[floodlight]
password_env = "FTRUST_KEYSTORE_PASSWORD"
"""
        self.vm_config.write_text(vm_toml)
        if self.replicas > 1:
            self.replica_ports = [(free_port(), free_port()) for _ in range(self.replicas)]
            for i, (api, publish) in enumerate(self.replica_ports, 1):
                own = vm_toml.replace(f"\nport = {self.vm_port}\n", f"\nport = {api}\n", 1).replace(
                    f"\ncrl_port = {self.crl_port}\n", f"\ncrl_port = {publish}\n", 1
                )
                self.replica_config(i).write_text(own)
        self.agent_config.write_text(
            f"""# written by ftrust demo
[state]
dir = "host/state"

[agent]
host = "127.0.0.1"
port = {self.agent_port}
name = "{HOST}"
backend = "sim"
ima_log = "host/ima/ascii_runtime_measurements"
sim_platform_dir = "host/sgx-platform"
enclave_socket_dir = "host/enclave-sockets"
"""
        )

    def build_images(self, vnfs: tuple[str, ...]) -> dict[str, str]:
        """Complete each VNF's enclave image with the VM CA it pins (so the pin is part of its
        MRENCLAVE), write its enclave process's configuration, and put the reviewed build's
        MRENCLAVE (vnf-a's) into the policy. Returns each image's MRENCLAVE."""
        import re

        from cryptography.hazmat.primitives import serialization

        from floodlight_trust.enclave.image import build_image
        from floodlight_trust.pki.ca import load_ca_certificate
        from floodlight_trust.sgxsim import measure_enclave_image

        ca_pem = load_ca_certificate(self.state / "ca").public_bytes(serialization.Encoding.PEM)
        measured = {}
        for vnf in vnfs:
            build_image(self.image_dir(vnf), ca_pem)
            measured[vnf] = bytes(measure_enclave_image(self.image_dir(vnf))).hex()
            self.enclave_config(vnf).write_text(
                f"""# written by ftrust demo: the enclave process of {vnf}
[state]
dir = "host/enclaves/{vnf}"

[enclave]
vnf = "{vnf}"
platform = "sim"
image = "host/vnfs/{vnf}"
socket = "host/enclave-sockets/{vnf}.sock"
sim_platform_dir = "host/sgx-platform"
sealed_dir = "host/enclaves/{vnf}/sealed"
"""
            )
        policy = self.root / "policy" / "demo.policy"
        text, n = re.subn(
            r'^set firewall_builds = \{"[0-9a-f]{64}"\}$',
            f'set firewall_builds = {{"{measured[vnfs[0]]}"}}',
            policy.read_text(),
            flags=re.M,
        )
        if n != 1:
            raise InternalError("demo.policy has no `set firewall_builds = {...}` line to fill in")
        policy.write_text(text)
        return measured

    def wait_socket(self, proc: Process, path: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ServiceError(f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.tail()}")
            if path.exists():
                return
            time.sleep(0.05)
        raise ServiceError(f"{proc.name} did not listen on {path} within {timeout:.0f} s:\n{proc.tail()}")

    # -- processes ---------------------------------------------------------------------------------
    def ftrust(self, config: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one ftrust command to completion (its output is returned, not shown); one that runs
        past ``timeout`` is a ServiceError naming it and what it printed."""
        try:
            return subprocess.run(
                [sys.executable, "-m", "floodlight_trust", "--config", str(config), *argv],
                capture_output=True,
                text=True,
                env=self.env(),
                timeout=timeout,
                cwd=self.root,
            )
        except subprocess.TimeoutExpired as e:
            printed = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise ServiceError(
                f"`ftrust {' '.join(argv[:3])}` did not finish within {timeout:.0f} s: {printed.strip()[-500:]}"
            ) from None

    def start(self, name: str, config: Path, *argv: str) -> Process:
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        log = log_path.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "floodlight_trust", "--config", str(config), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.root,
        )
        proc = Process(name, popen, log_path, log)
        self.processes.append(proc)
        return proc

    def wait_port(self, proc: Process, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ServiceError(f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise ServiceError(f"{proc.name} did not open port {port} within {timeout:.0f} s:\n{proc.tail()}")

    def close(self) -> None:
        """Stop everything that was started, newest first."""
        for endpoint in reversed(self.endpoints):
            endpoint.stop()
        for proc in reversed(self.processes):
            proc.stop()
