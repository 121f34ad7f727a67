"""Enclave backends of the agent: where quotes come from (``sim`` or ``gramine``).

A backend hosts the host's integrity enclave and the VNF enclaves. It never decides anything: it
produces quotes over the REPORTDATA it is given and installs credentials the VM sends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floodlight_trust.errors import InputError
from floodlight_trust.protocol.keywrap import WrappedKey


@dataclass(frozen=True, slots=True)
class Evidence:
    evidence_type: str  # "DCAP" or "IAS"
    quote: bytes
    collateral: dict[str, Any] | None  # DCAP collateral JSON the VM verifies, or None (VM fetches it)


@dataclass(frozen=True, slots=True)
class EnclaveInfo:
    vnf: str
    mrenclave: str  # hex


@dataclass(frozen=True, slots=True)
class InstalledCredentials:
    vnf: str
    certificate_sha256: str
    chain_pem: tuple[str, ...]


class EnclaveBackend(Protocol):
    name: str
    simulated: bool

    def host_evidence(self, report_data: bytes) -> Evidence: ...

    def enclaves(self) -> list[EnclaveInfo]: ...

    def enclave_public_key(self, vnf: str) -> bytes: ...

    def enclave_evidence(self, vnf: str, report_data: bytes) -> Evidence: ...

    def install_credentials(
        self, vnf: str, chain_pem: list[str], wrapped: WrappedKey | None
    ) -> InstalledCredentials: ...


def parse_chain(chain_pem: list[str]) -> list[x509.Certificate]:
    try:
        return [x509.load_pem_x509_certificate(p.encode()) for p in chain_pem]
    except ValueError as e:
        raise InputError(f"certificate chain: not PEM certificates ({e})") from None


def certificate_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_backend(name: str, **options: Any) -> EnclaveBackend:
    """The backend called ``name`` ("sim" or "gramine") with its options."""
    if name == "sim":
        from floodlight_trust.agent.backends.sim import SimBackend

        return SimBackend.open(**options)
    if name == "gramine":
        from floodlight_trust.agent.backends.gramine import GramineBackend

        return GramineBackend(**options)
    raise InputError(f"unknown enclave backend {name!r}", hint="agent.backend is 'sim' or 'gramine'")
