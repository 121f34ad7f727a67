"""VNF enclaves as their own processes (`ftrust enclave serve`) on the simulated platform.

Each process has its image (code + the pinned VM CA), its sealed state and its socket in the
agent's socket directory; tests start what they need and stop it (``EnclaveProcess.stop``).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from floodlight_trust.enclave.channel import EnclaveChannel, socket_path
from floodlight_trust.enclave.image import build_image
from floodlight_trust.sgxsim import measure_enclave_image
from tests.support.cli import ftrust_command

VNF_CODE = b"# a firewall VNF on the enclave runtime\nfrom floodlight_trust.enclave import ControllerClient\n"


def make_image(directory: Path, vm_ca_pem: bytes, code: bytes = VNF_CODE) -> str:
    """An enclave image directory pinning ``vm_ca_pem``; returns its (simulated) MRENCLAVE hex."""
    build_image(directory, vm_ca_pem, files={"vnf.py": code})
    return bytes(measure_enclave_image(directory)).hex()


def enclave_policy(mrenclave: str, pattern: str = "vnf-proc-*", host_policy: str = "test_host") -> str:
    """Policy text admitting VNFs named ``pattern`` whose enclave has ``mrenclave`` (sim signer)."""
    from floodlight_trust.agent.backends.sim import SIM_SIGNER

    name = pattern.replace("-", "_").replace("*", "")
    return f"""
enclave {name}enclave {{
    identity: mrenclave in {{"{mrenclave}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
    debug: debug == false
    allow_simulated = true
}}
enroll {name}rule for "{pattern}" {{
    host = {host_policy}
    enclave = {name}enclave
    certificate {{ validity = 1h }}
}}
"""


@dataclass
class EnclaveProcess:
    vnf: str
    config: Path
    socket: Path
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def channel(self) -> EnclaveChannel:
        return EnclaveChannel(self.vnf, self.socket)

    def info(self) -> dict[str, Any]:
        return self.channel.info()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def write_enclave_config(
    directory: Path, vnf: str, image: Path, platform_dir: Path, socket_dir: Path, *, name: str | None = None
) -> Path:
    """The [enclave] configuration of one enclave process (its state under ``directory``)."""
    name = name or vnf
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"{name}.toml"
    config.write_text(
        f"""[state]
dir = "{directory / name}"

[enclave]
vnf = "{vnf}"
platform = "sim"
image = "{image}"
socket = "{socket_path(socket_dir, vnf)}"
sim_platform_dir = "{platform_dir}"
sealed_dir = "{directory / name / "sealed"}"
"""
    )
    return config


def start_enclave(config: Path, vnf: str, socket_dir: Path, *, timeout: float = 30) -> EnclaveProcess:
    """Start ``ftrust enclave serve`` with ``config`` and wait until it listens."""
    sock = socket_path(socket_dir, vnf)
    log_path = config.with_suffix(".log")
    log = log_path.open("wb")
    popen = subprocess.Popen(
        ftrust_command("--config", str(config), "enclave", "serve"),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    proc = EnclaveProcess(vnf, config, sock, popen, log_path, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            proc.stop()
            raise AssertionError(f"enclave {vnf} exited {popen.returncode}: {log_path.read_text()}")
        if sock.exists():
            return proc
        time.sleep(0.05)
    proc.stop()
    raise AssertionError(f"enclave {vnf} did not listen within {timeout} s: {log_path.read_text()}")
