"""The ``gramine`` backend: real SGX through Gramine's ``/dev/attestation`` pseudo-files.

Gramine exposes, inside an enclave, ``attestation_type`` ("dcap" or "epid"), ``user_report_data``
(write 64 bytes) and ``quote`` (read the quote over the last written report data). The agent runs
as the host's integrity enclave, so ``root`` is its own ``/dev/attestation``. Each VNF enclave is a
directory in ``vnf_dir`` holding ``attestation/`` (that enclave's attestation interface, exported
to the agent), ``public_key.der`` (the enclave's SubjectPublicKeyInfo) and ``credentials/``, where
the agent drops the certificate chain and, in VM-generated-key mode, the sealed key for the enclave
to open. Tests point ``root`` and ``vnf_dir`` at plain directories of files.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from floodlight_trust.agent.backends import EnclaveInfo, Evidence, InstalledCredentials, certificate_sha256, parse_chain
from floodlight_trust.errors import InputError, Location
from floodlight_trust.fileio import atomic_write, read_bytes
from floodlight_trust.protocol.keywrap import WrappedKey

_TYPES = {"dcap": "DCAP", "epid": "IAS"}


class AttestationInterface:
    """One enclave's Gramine attestation directory."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._lock = threading.Lock()  # report data and quote are a write-then-read pair

    def attestation_type(self) -> str:
        raw = read_bytes(self.root / "attestation_type", what="Gramine attestation_type").decode().strip()
        if raw not in _TYPES:
            raise InputError(
                f"unsupported Gramine attestation type {raw!r}",
                location=Location(str(self.root / "attestation_type")),
                hint="the manifest must set sgx.remote_attestation to 'dcap' or 'epid'",
            )
        return _TYPES[raw]

    def quote(self, report_data: bytes) -> Evidence:
        if len(report_data) != 64:
            raise InputError(f"report data must be 64 bytes, got {len(report_data)}")
        with self._lock:
            kind = self.attestation_type()
            path = self.root / "user_report_data"
            try:
                with open(path, "wb") as fh:
                    fh.write(report_data)
            except OSError as e:
                raise InputError(
                    f"cannot write Gramine user_report_data: {e.strerror}", location=Location(str(path))
                ) from None
            quote = read_bytes(self.root / "quote", what="Gramine quote")
        return Evidence(kind, quote, None)


class GramineBackend:
    name = "gramine"
    simulated = False

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = "/dev/attestation",
        vnf_dir: str | os.PathLike[str] | None = None,
        **_ignored: object,
    ):
        self.host = AttestationInterface(root)
        self.vnf_dir = Path(vnf_dir) if vnf_dir else None

    def _vnf_path(self, vnf: str) -> Path:
        if self.vnf_dir is None or not (self.vnf_dir / vnf / "attestation").is_dir():
            raise InputError(f"no VNF enclave {vnf!r} on this host", location=Location(str(self.vnf_dir or "")))
        return self.vnf_dir / vnf

    def host_evidence(self, report_data: bytes) -> Evidence:
        return self.host.quote(report_data)

    def enclaves(self) -> list[EnclaveInfo]:
        if self.vnf_dir is None:
            return []
        out = []
        for d in sorted(self.vnf_dir.iterdir()):
            if (d / "attestation").is_dir():
                mr = d / "mrenclave"
                out.append(EnclaveInfo(d.name, mr.read_text().strip() if mr.exists() else "0" * 64))
        return out

    def enclave_public_key(self, vnf: str) -> bytes:
        return read_bytes(self._vnf_path(vnf) / "public_key.der", what="enclave public key")

    def enclave_evidence(self, vnf: str, report_data: bytes) -> Evidence:
        return AttestationInterface(self._vnf_path(vnf) / "attestation").quote(report_data)

    def install_credentials(self, vnf: str, chain_pem: list[str], wrapped: WrappedKey | None) -> InstalledCredentials:
        chain = parse_chain(chain_pem)
        out = self._vnf_path(vnf) / "credentials"
        out.mkdir(exist_ok=True, mode=0o700)
        atomic_write(out / "chain.pem", "".join(chain_pem), mode=0o644)
        if wrapped is not None:
            atomic_write(out / "wrapped_key.json", json.dumps(wrapped.to_json()), mode=0o600)
        return InstalledCredentials(vnf, certificate_sha256(chain[0]), tuple(chain_pem))
