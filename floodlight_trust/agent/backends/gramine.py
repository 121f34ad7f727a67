"""The ``gramine`` backend: the agent runs in the host's integrity enclave under Gramine.

The integrity enclave's quotes come from the agent's own ``/dev/attestation`` (``root``). Each VNF
enclave is a separate Gramine enclave running the enclave runtime (``ftrust enclave serve``), with
its own ``/dev/attestation`` and sealed key; Gramine's attestation files are local to one enclave,
so the agent reaches a VNF only through that enclave's socket in ``socket_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from floodlight_trust.agent.backends import Evidence, VnfEnclaves
from floodlight_trust.enclave.platform import AttestationInterface


class GramineBackend:
    name = "gramine"
    simulated = False

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = "/dev/attestation",
        socket_dir: str | os.PathLike[str] | None = None,
        **_ignored: object,
    ):
        self.host = AttestationInterface(root)
        self.vnfs = VnfEnclaves(Path(socket_dir) if socket_dir else None)

    def host_evidence(self, report_data: bytes) -> Evidence:
        return self.host.quote(report_data)
