"""The ``sim`` backend: a simulated SGX platform for machines without SGX (CI, the demo).

Quotes are real DCAP v3 quotes from :mod:`floodlight_trust.sgxsim` (a simulated PCK chain, TCB info
and QE identity under a simulated root CA), so the VM verifies them through the same DCAP code. The
VM accepts them only with ``trust_simulated_sgx = true`` and then marks every decision simulated.
With ``evidence="epid"`` the platform acts as an EPID platform instead: byte-exact ``sgx_quote_t``
v2 quotes with a simulated EPID signature, which the VM submits to an IAS (the simulated one,
trusted only through ``ias.unsafe_report_signing_ca``).

The agent quotes only for the host's integrity enclave. Each VNF enclave is its own process
(``ftrust enclave serve``, :mod:`floodlight_trust.enclave`) reached over its socket in
``socket_dir``; tests may host enclave runtimes in their own process (:meth:`SimBackend.add_enclave`),
which run the same enclave code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cryptography import x509

from floodlight_trust.agent.backends import Evidence, VnfEnclaves
from floodlight_trust.enclave.platform import SIM_EVIDENCE, SIM_SIGNER, SimEnclave, SimulatedAttestation
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import InputError

log = logging.getLogger("floodlight_trust.agent.sim")

__all__ = ["INTEGRITY_ENCLAVE_IMAGE", "SIM_EVIDENCE", "SIM_SIGNER", "SimBackend"]

# The host's integrity enclave: fixed code, so its MRENCLAVE is fixed for a given release.
INTEGRITY_ENCLAVE_IMAGE = b"floodlight-trust host integrity enclave v1\n"


def _measure(image: bytes | Path) -> bytes:
    from floodlight_trust.sgxsim import measure_enclave_image

    return bytes(measure_enclave_image(image))


class SimBackend:
    name = "sim"
    simulated = True

    def __init__(
        self,
        platform: Any,
        enclaves: dict[str, EnclaveRuntime] | None = None,
        *,
        evidence: str = "dcap",
        socket_dir: Path | None = None,
        vm_ca: x509.Certificate | None = None,
    ):
        if evidence not in SIM_EVIDENCE:
            raise InputError(f"unknown simulated evidence {evidence!r}", hint="agent.sim_evidence is 'dcap' or 'epid'")
        self.evidence = evidence
        self.attestation = SimulatedAttestation(platform, evidence)
        self.integrity_mrenclave = _measure(INTEGRITY_ENCLAVE_IMAGE)
        self.vnfs = VnfEnclaves(socket_dir)
        self.vm_ca = vm_ca
        for vnf, runtime in (enclaves or {}).items():
            self.vnfs.add(vnf, runtime)

    @classmethod
    def open(
        cls,
        *,
        platform_dir: str | os.PathLike[str],
        socket_dir: str | os.PathLike[str] | None = None,
        evidence: str = "dcap",
        **_ignored: Any,
    ) -> SimBackend:
        """Load (or create on first use) the simulated platform in ``platform_dir``; VNF enclaves
        are the processes listening in ``socket_dir``."""
        from floodlight_trust.enclave.platform import platform_seal_secret
        from floodlight_trust.sgxsim import SimulatedPlatform

        pdir = Path(platform_dir)
        platform = (
            SimulatedPlatform.load(pdir) if (pdir.is_dir() and any(pdir.iterdir())) else SimulatedPlatform.create(pdir)
        )
        platform_seal_secret(pdir)  # the VNF enclaves of this platform seal under it
        log.warning("SIMULATED SGX: quotes from this agent prove nothing about real hardware")
        return cls(platform, evidence=evidence, socket_dir=Path(socket_dir) if socket_dir else None)

    @property
    def platform(self) -> Any:
        return self.attestation.platform

    @platform.setter
    def platform(self, machine: Any) -> None:
        """Move this host (and its in-process enclaves, which share its quoting enclave) to another
        simulated machine (tests: a re-issued PCK)."""
        self.attestation.move_to(machine)

    def add_enclave(self, vnf: str, image: bytes, *, vm_ca: x509.Certificate | None = None) -> EnclaveRuntime:
        """An enclave runtime for ``image`` inside THIS process (tests, benchmarks): the same enclave
        code as ``ftrust enclave serve``, its sealed state in memory. It pins ``vm_ca`` (default:
        the backend's)."""
        platform = SimEnclave(self.attestation, image, seal_secret=os.urandom(32))
        runtime = EnclaveRuntime.start(vnf, platform, vm_ca or self.vm_ca)
        self.vnfs.add(vnf, runtime)
        return runtime

    def enclave(self, vnf: str) -> EnclaveRuntime:
        """An in-process enclave added with :meth:`add_enclave`."""
        local = self.vnfs.local(vnf)
        if not isinstance(local, EnclaveRuntime):
            raise InputError(f"no in-process VNF enclave {vnf!r}")
        return local

    def host_evidence(self, report_data: bytes) -> Evidence:
        return self.attestation.quote(self.integrity_mrenclave, report_data)
