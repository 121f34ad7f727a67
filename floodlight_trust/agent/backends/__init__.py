"""Enclave backends of the agent: the host's integrity enclave, and the relay to VNF enclaves.

A backend produces the integrity enclave's quotes (the agent itself runs in it: ``sim`` or
``gramine``) and reaches each VNF enclave, which runs in its OWN process with its own attestation
and key (``floodlight_trust/enclave/``). The agent relays: it passes the VM's nonce to the VNF
enclave and its quote back, and the VM's credentials to the enclave, which judges them itself. The
agent never holds a VNF's key, never quotes for a VNF, and decides nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from floodlight_trust.enclave.platform import Evidence
from floodlight_trust.errors import FtrustError, InputError

log = logging.getLogger("floodlight_trust.agent.backends")

__all__ = ["EnclaveBackend", "EnclaveInfo", "Evidence", "VnfEnclave", "VnfEnclaves", "load_backend"]


@dataclass(frozen=True, slots=True)
class EnclaveInfo:
    vnf: str
    mrenclave: str  # hex, as the enclave's platform measured it


class VnfEnclave(Protocol):
    """One VNF enclave as the agent reaches it: over its socket (``EnclaveChannel``), or, in a test
    process, the ``EnclaveRuntime`` itself. Every answer was made by the enclave."""

    def info(self) -> dict[str, Any]: ...

    def evidence(self, nonce: bytes) -> dict[str, Any]: ...

    def install(self, message: dict[str, Any]) -> dict[str, Any]: ...


class VnfEnclaves:
    """The VNF enclaves of this host: one Unix socket per enclave in ``socket_dir``
    (``<vnf>.sock``), plus enclaves living in this process (tests only, :meth:`add`)."""

    def __init__(self, socket_dir: Path | None = None):
        self.socket_dir = socket_dir
        self._local: dict[str, VnfEnclave] = {}

    def add(self, vnf: str, enclave: VnfEnclave) -> None:
        self._local[vnf] = enclave

    def local(self, vnf: str) -> VnfEnclave | None:
        return self._local.get(vnf)

    def names(self) -> list[str]:
        from floodlight_trust.enclave.channel import SOCKET_SUFFIX, TCP_SUFFIX

        names = set(self._local)
        if self.socket_dir is not None and self.socket_dir.is_dir():
            for suffix in (SOCKET_SUFFIX, TCP_SUFFIX):
                names |= {p.name[: -len(suffix)] for p in self.socket_dir.glob(f"*{suffix}")}
        return sorted(names)

    def get(self, vnf: str) -> VnfEnclave:
        from floodlight_trust.enclave.channel import TCP_SUFFIX, EnclaveChannel, socket_path
        from floodlight_trust.fileio import read_bytes

        if vnf in self._local:
            return self._local[vnf]
        if self.socket_dir is not None:
            path = socket_path(self.socket_dir, vnf)
            if path.exists():
                return EnclaveChannel(vnf, path)
            tcp = self.socket_dir / f"{vnf}{TCP_SUFFIX}"
            if tcp.exists():  # Gramine: the enclave's loopback TCP address
                text = read_bytes(tcp, what="enclave address").decode("utf-8", "replace").strip()
                return EnclaveChannel(vnf, text if text.startswith("tcp://") else f"tcp://{text}")
        raise InputError(
            f"no VNF enclave {vnf!r} on this host",
            hint="known: " + (", ".join(self.names()) or "none") + " (each enclave runs `ftrust enclave serve`)",
        )

    def infos(self) -> list[EnclaveInfo]:
        out = []
        for vnf in self.names():
            try:
                out.append(EnclaveInfo(vnf, self.get(vnf).info()["mrenclave"]))
            except FtrustError as e:  # one enclave down does not hide the others
                log.warning("enclave %s: %s", vnf, e)
        return out


class EnclaveBackend(Protocol):
    name: str
    simulated: bool
    vnfs: VnfEnclaves

    def host_evidence(self, report_data: bytes) -> Evidence: ...


def load_backend(name: str, **options: Any) -> EnclaveBackend:
    """The backend called ``name`` ("sim" or "gramine") with its options."""
    if name == "sim":
        from floodlight_trust.agent.backends.sim import SimBackend

        return SimBackend.open(**options)
    if name == "gramine":
        from floodlight_trust.agent.backends.gramine import GramineBackend

        return GramineBackend(**options)
    raise InputError(f"unknown enclave backend {name!r}", hint="agent.backend is 'sim' or 'gramine'")
