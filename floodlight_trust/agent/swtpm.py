"""A SIMULATED TPM: swtpm (libtpms) on a state directory, for the sim backend, the demo and tests.

:func:`manufacture` runs ``swtpm_setup`` like a TPM vendor would: an RSA and an ECC EK, their EK
certificates signed by a local CA made in the state directory (``swtpm_localca``), PCR banks sha1
and sha256. :class:`Swtpm` then serves the TPM on loopback TCP ports it picks; tpm2-tools reach it
with :attr:`Swtpm.tcti`. The local CA is a simulated manufacturer root: trust it only where the
operator names it so (it is no vendor's).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from floodlight_trust.errors import InternalError

BINARIES = ("swtpm", "swtpm_setup", "swtpm_localca")


def available() -> bool:
    """swtpm and its setup tools (Debian: swtpm, swtpm-tools) are installed."""
    return all(shutil.which(b) for b in BINARIES)


def manufacturer_certificates(state_dir: Path) -> list[Path]:
    """The root and the issuing CA certificate: what an operator's roots directory would hold."""
    ca = Path(state_dir) / "localca"
    return [ca / "swtpm-localca-rootca-cert.pem", ca / "issuercert.pem"]


def manufacture(state_dir: Path, *, ek_certificate: bool = True) -> Path:
    """Create a TPM 2.0 state in ``state_dir`` (idempotent: an existing state is kept)."""
    state_dir = Path(state_dir)
    tpm = state_dir / "tpm"
    if (tpm / "tpm2-00.permall").exists():
        return state_dir
    if not available():
        raise InternalError("swtpm is not installed", hint="apt-get install swtpm swtpm-tools (make setup does)")
    ca = state_dir / "localca"
    tpm.mkdir(parents=True, exist_ok=True)
    ca.mkdir(parents=True, exist_ok=True)
    (state_dir / "localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n"
    )
    (state_dir / "localca.options").write_text(
        "--platform-manufacturer floodlight-trust\n--platform-version 2.1\n--platform-model swtpm\n"
    )
    (state_dir / "swtpm_setup.conf").write_text(
        "create_certs_tool = swtpm_localca\n"
        f"create_certs_tool_config = {state_dir}/localca.conf\n"
        f"create_certs_tool_options = {state_dir}/localca.options\n"
        "active_pcr_banks = sha1,sha256\n"
    )
    args = ["swtpm_setup", "--tpm2", "--tpmstate", str(tpm), "--config", str(state_dir / "swtpm_setup.conf"),
            "--createek", "--pcr-banks", "sha1,sha256", "--not-overwrite"]  # fmt: skip
    if ek_certificate:
        args.append("--create-ek-cert")
    done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise InternalError(f"swtpm_setup failed: {done.stderr.decode(errors='replace').strip()[-400:]}")
    return state_dir


def _free_port_pair() -> tuple[int, int]:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as b, socket.socket() as c:
                b.bind(("127.0.0.1", port))
                c.bind(("127.0.0.1", port + 1))
            return port, port + 1
        except OSError:
            continue
    raise InternalError("no two consecutive free loopback ports for swtpm")


class Swtpm:
    """A running swtpm serving a manufactured state directory on loopback; stop() ends it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self) -> Swtpm:
        manufacture(self.state_dir)
        for _ in range(5):
            self.port, ctrl = _free_port_pair()
            self.process = subprocess.Popen(
                [
                    "swtpm",
                    "socket",
                    "--tpm2",
                    "--tpmstate",
                    f"dir={self.state_dir / 'tpm'}",
                    "--server",
                    f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                    "--ctrl",
                    f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
                    "--flags",
                    "not-need-init,startup-clear",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_listening():
                # A simulated TPM stopped without TPM2_Shutdown counts an unorderly shutdown against
                # dictionary-attack protection; clear it so the next key use is not locked out.
                self._tools("tpm2_dictionarylockout", "--clear-lockout")
                return self
            self.stop()
        raise InternalError("swtpm did not start listening on loopback")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)  # polling a port: swtpm offers no readiness event
        return False

    def _tools(self, *args: str) -> bool:
        if not shutil.which(args[0]):
            return False
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        done = subprocess.run(list(args), capture_output=True, env=env, timeout=30, check=False)
        return done.returncode == 0

    def stop(self) -> None:
        """An orderly power-off: TPM2_Shutdown(CLEAR), then the process ends."""
        if self.process is not None and self.process.poll() is None:
            self._tools("tpm2_shutdown", "--clear")
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> Swtpm:
        """Power-cycle the simulated TPM: the host reboots (resetCount rises, PCRs reset)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SimulatedKernel:
    """The SIMULATED host's kernel for a swtpm: extends every IMA entry that appears in the host's
    measurement list into PCR 10 (sha1 and sha256), once and in order, as Linux does on a real host.

    Only entries appended after what was already extended are extended; a rewrite of entries already
    extended changes nothing in the TPM, exactly the property the TPM anchoring relies on.
    """

    def __init__(self, tpm: Any) -> None:
        self.tpm = tpm
        self.extended_entries = 0

    def catch_up(self, ima_list: bytes) -> int:
        from floodlight_trust.evidence.ima import parse_line, template_hash

        sizes = {"sha1": 20, "sha256": 32}
        lines = [line for line in ima_list[: ima_list.rfind(b"\n") + 1].splitlines() if line.strip()]
        for line in lines[self.extended_entries :]:  # entries past those measured already
            self.extended_entries += 1
            record, _ = parse_line(line, self.extended_entries, self.extended_entries - 1)
            self.tpm.extend(10, {b: b"\xff" * n if record.violation else template_hash(record, b) for b, n in sizes.items()})
        return self.extended_entries


class KernelSimulatingTpm:
    """A swtpm :class:`~floodlight_trust.agent.tpm.Tpm` whose simulated kernel has measured the IMA
    list up to now before every quote (the sim backend's host: ``agent.tpm = "swtpm"``)."""

    def __init__(self, tpm: Any, ima: Any, simulator: Swtpm) -> None:
        self.tpm = tpm
        self.ima = ima
        self.simulator = simulator
        self.kernel = SimulatedKernel(tpm)

    def endorsement(self) -> Any:
        return self.tpm.endorsement()

    def attestation_key(self) -> bytes:
        return bytes(self.tpm.attestation_key())

    def activate_credential(self, credential: bytes) -> bytes:
        return bytes(self.tpm.activate_credential(credential))

    def quote(self, qualifying_data: bytes, selection: Any) -> Any:
        data, _ = self.ima.read()
        self.kernel.catch_up(data)
        return self.tpm.quote(qualifying_data, selection)
