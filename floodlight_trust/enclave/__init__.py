"""The VNF enclave runtime: the code that runs inside each VNF's enclave.

- :mod:`.runtime`: the enclave's key (born and sealed inside it), its quotes, the credentials it
  accepts (:mod:`.credentials`: pinned VM CA, its own key, the VM's provisioning signature);
- :mod:`.platform`: Gramine's ``/dev/attestation`` and encrypted files, or the simulated platform;
- :mod:`.channel`: the Unix socket through which the agent relays challenges and credentials;
- :mod:`.client`: :class:`ControllerClient`, mutual TLS to Floodlight from inside the enclave;
- :mod:`.image`: what an enclave image holds (its VNF name, the pinned VM CA);
- :mod:`.manifest`: ``ftrust enclave check-manifest`` for Gramine manifests.
"""

from __future__ import annotations

from floodlight_trust.enclave.client import (
    ControllerClient,
    ControllerError,
    ControllerRefused,
    ControllerResponse,
    NotEnrolledError,
    RevokedError,
)
from floodlight_trust.enclave.runtime import EnclaveRuntime

__all__ = [
    "ControllerClient",
    "ControllerError",
    "ControllerRefused",
    "ControllerResponse",
    "EnclaveRuntime",
    "NotEnrolledError",
    "RevokedError",
]
