"""The host's TPM, read through tpm2-tools: the kernel device (``/dev/tpmrm0``) or swtpm.

The seam is :class:`Tpm`; :class:`Tpm2ToolsTpm` drives Debian's tpm2-tools (``tpm2_quote``,
``tpm2_createak``, ``tpm2_activatecredential``...) over a TCTI: ``device:/dev/tpmrm0`` on a real
host (the kernel's resource manager), ``swtpm:host=127.0.0.1,port=N`` for the simulated TPM, which
only ever comes from swtpm (:mod:`floodlight_trust.agent.swtpm`). Nothing here judges evidence: it
returns the TPM's bytes exactly as the TPM produced them.

Keys stay persistent, as a host keeps them: the EK at ``0x81010001`` (TCG's RSA EK handle, where
swtpm_setup and most provisioning put it) and the AK at ``0x81010002``, created under the EK's
endorsement hierarchy by ``tpm2_createak`` on first use, so its clock info is not obfuscated.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from floodlight_trust.errors import InternalError, ServiceError

log = logging.getLogger(__name__)

EK_HANDLE = 0x81010001
AK_HANDLE = 0x81010002
EK_CERT_NV_RSA = 0x01C00002  # TCG EK Credential Profile: RSA 2048 EK certificate
DEVICE_TCTI = "device:/dev/tpmrm0"
TOOLS = ("tpm2_quote", "tpm2_createak", "tpm2_readpublic", "tpm2_activatecredential", "tpm2_nvread", "tpm2_pcrextend")
_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class TpmQuote:
    """What ``tpm2_quote`` wrote: TPMS_ATTEST, TPMT_SIGNATURE and the PCR file (serialized form)."""

    attest: bytes
    signature: bytes
    pcrs: bytes


@dataclass(frozen=True, slots=True)
class Endorsement:
    ek_public: bytes  # TPMT_PUBLIC of the EK
    ek_certificate: bytes | None  # as read from NV (may carry NV padding), or None when the TPM has none


class Tpm(Protocol):
    """A TPM the agent can ask for evidence."""

    def endorsement(self) -> Endorsement: ...

    def attestation_key(self) -> bytes:
        """TPMT_PUBLIC of the AK (created on first use)."""
        ...

    def quote(self, qualifying_data: bytes, selection: Mapping[str, Sequence[int]]) -> TpmQuote: ...

    def activate_credential(self, credential: bytes) -> bytes:
        """TPM2_ActivateCredential with the AK and the EK on a ``tpm2_makecredential`` file."""
        ...


def tools_available() -> bool:
    return all(shutil.which(t) for t in TOOLS)


class Tpm2ToolsTpm:
    """:class:`Tpm` over tpm2-tools with a TCTI (one command at a time; transient objects flushed)."""

    def __init__(
        self,
        tcti: str = DEVICE_TCTI,
        *,
        ek_handle: int = EK_HANDLE,
        ak_handle: int = AK_HANDLE,
        ak_key: str = "rsa",
        ak_scheme: str = "rsassa",
        ak_hash: str = "sha256",
    ) -> None:
        if not tools_available():
            raise InternalError(
                "tpm2-tools are not installed",
                hint="apt-get install tpm2-tools (the TPM anchoring reads quotes with them)",
            )
        self.tcti = tcti
        self.ek_handle = ek_handle
        self.ak_handle = ak_handle
        self._ak_ready = False
        # The AK created on first use: tpm2_createak -G (rsa, ecc) -s (rsassa, rsapss, ecdsa) -g (sha256, sha384)
        self.ak_key, self.ak_scheme, self.ak_hash = ak_key, ak_scheme, ak_hash

    def _run(self, *args: str, cwd: str | None = None) -> bytes:
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        try:
            done = subprocess.run(list(args), capture_output=True, env=env, cwd=cwd, timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"TPM: {args[0]} did not answer within {_TIMEOUT} s ({self.tcti})") from None
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            why = "; ".join(detail[-3:]) if detail else f"exit {done.returncode}"
            raise ServiceError(f"TPM: {args[0]} failed ({self.tcti}): {why}")
        return done.stdout

    def _flush(self) -> None:
        # Without a resource manager (swtpm's socket) transient objects and sessions would pile up.
        if not self.tcti.startswith("device:/dev/tpmrm"):
            self._run("tpm2_flushcontext", "-t")
            self._run("tpm2_flushcontext", "-s")

    def _persistent(self) -> set[int]:
        out = self._run("tpm2_getcap", "handles-persistent").decode()
        return {
            int(line.strip().lstrip("- "), 16)
            for line in out.splitlines()
            if line.strip().lstrip("- ").startswith("0x")
        }

    def _read_public(self, handle: int, work: str) -> bytes:
        path = Path(work) / "public.tpmt"
        self._run("tpm2_readpublic", "-c", f"0x{handle:08x}", "-f", "tpmt", "-o", str(path))
        return path.read_bytes()

    def endorsement(self) -> Endorsement:
        with tempfile.TemporaryDirectory(prefix="ftrust-tpm-") as work:
            if self.ek_handle not in self._persistent():
                self._run("tpm2_createek", "-c", f"0x{self.ek_handle:08x}", "-G", "rsa")
            public = self._read_public(self.ek_handle, work)
            cert: bytes | None = None
            path = Path(work) / "ek.crt"
            try:
                self._run("tpm2_nvread", f"0x{EK_CERT_NV_RSA:08x}", "-C", "o", "-o", str(path))
                cert = path.read_bytes()
            except ServiceError:
                log.info("the TPM has no RSA EK certificate in NV 0x%08x", EK_CERT_NV_RSA)
            self._flush()
            return Endorsement(public, cert)

    def attestation_key(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="ftrust-tpm-") as work:
            if self.ak_handle not in self._persistent():
                self.endorsement()
                ctx = str(Path(work) / "ak.ctx")
                self._run("tpm2_createak", "-C", f"0x{self.ek_handle:08x}", "-c", ctx, "-G", self.ak_key,
                          "-g", self.ak_hash, "-s", self.ak_scheme,
                          "-u", str(Path(work) / "ak.pub"), "-n", str(Path(work) / "ak.name"))  # fmt: skip
                self._flush()
                self._run("tpm2_evictcontrol", "-C", "o", "-c", ctx, f"0x{self.ak_handle:08x}")
                self._flush()
            self._ak_ready = True
            return self._read_public(self.ak_handle, work)

    def quote(self, qualifying_data: bytes, selection: Mapping[str, Sequence[int]]) -> TpmQuote:
        if not self._ak_ready:
            self.attestation_key()
        pcr_list = "+".join(f"{bank}:{','.join(str(p) for p in sorted(pcrs))}" for bank, pcrs in selection.items())
        with tempfile.TemporaryDirectory(prefix="ftrust-tpm-") as work:
            w = Path(work)
            args = ["tpm2_quote", "-c", f"0x{self.ak_handle:08x}", "-l", pcr_list, "-g", self.ak_hash,
                    f"--scheme={self.ak_scheme}",
                    "-m", str(w / "q.msg"), "-s", str(w / "q.sig"), "-o", str(w / "q.pcrs")]  # fmt: skip
            if qualifying_data:
                args += ["-q", qualifying_data.hex()]
            self._run(*args)
            self._flush()
            return TpmQuote((w / "q.msg").read_bytes(), (w / "q.sig").read_bytes(), (w / "q.pcrs").read_bytes())

    def activate_credential(self, credential: bytes) -> bytes:
        if not self._ak_ready:
            self.attestation_key()
        with tempfile.TemporaryDirectory(prefix="ftrust-tpm-") as work:
            w = Path(work)
            (w / "cred").write_bytes(credential)
            session = str(w / "session.ctx")
            self._run("tpm2_startauthsession", "--policy-session", "-S", session)
            try:
                self._run("tpm2_policysecret", "-S", session, "-c", "e")
                self._run("tpm2_activatecredential", "-c", f"0x{self.ak_handle:08x}", "-C", f"0x{self.ek_handle:08x}",
                          "-i", str(w / "cred"), "-o", str(w / "secret"), f"-Psession:{session}")  # fmt: skip
            finally:
                self._run("tpm2_flushcontext", session)
                self._flush()
            return (w / "secret").read_bytes()

    def extend(self, pcr: int, digests: Mapping[str, bytes]) -> None:
        """TPM2_PCR_Extend: what the kernel does for each IMA measurement (used by the simulated host)."""
        spec = ",".join(f"{bank}={value.hex()}" for bank, value in digests.items())
        self._run("tpm2_pcrextend", f"{pcr}:{spec}")
