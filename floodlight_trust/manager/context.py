"""What every step of the Verification Manager's workflow shares: storage, the CA, the policy in
force, the trust settings, the clock and the way to reach a host's agent.

:class:`~floodlight_trust.manager.workflow.VerificationManager` is a :class:`ManagerContext`; the
steps (host attestation, enrollment, revocation) hold it and read the policy live, so that
``set_policy`` reaches every step at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from floodlight_trust.errors import InputError
from floodlight_trust.manager.nonces import Nonces
from floodlight_trust.storage.records import HostRecord
from floodlight_trust.storage.stores import Storage


class AgentConnection(Protocol):
    """What the VM needs from an agent (``manager.client.AgentClient`` over HTTP)."""

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> dict[str, Any]: ...

    def enclave_evidence(self, vnf: str, nonce: bytes) -> dict[str, Any]: ...

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]: ...


class ManagerContext:
    """Storage, CA, policy, settings and clock of one Verification Manager."""

    def __init__(
        self,
        *,
        storage: Storage,
        ca: Any,
        policy: Any,
        anchors: Sequence[Any],
        nonce_ttl_seconds: int,
        host_trust_seconds: int,
        grace_period_seconds: int,
        key_mode: str,
        connect: Callable[[HostRecord], AgentConnection] | None,
        now: Callable[[], datetime],
        require_linkable_epid: bool,
        renew_before_seconds: int | None,
        self_registering_rules: Sequence[str] = (),
    ):
        self.storage = storage  # every record goes through its stores (storage/stores.py)
        self.nonces = Nonces(storage, ttl_seconds=nonce_ttl_seconds)
        self.ca = ca
        self.policy = policy
        self.anchors = list(anchors)
        self.host_trust = timedelta(seconds=host_trust_seconds)
        self.grace = timedelta(seconds=grace_period_seconds)
        self.key_mode = key_mode
        self.connect = connect
        self.now = now
        self.require_linkable_epid = require_linkable_epid
        # Re-attestation renews a VNF's certificate only when less than this is left of it
        # (None: every round). The enclave evidence is checked every round either way.
        self.renew_before = timedelta(seconds=renew_before_seconds) if renew_before_seconds is not None else None
        # Enroll rules the operator lets register a VNF name on its first enrollment
        # (vm.self_registering_enroll_rules); every other VNF name needs an admin's registration.
        self.self_registering_rules = frozenset(self_registering_rules)

    @property
    def policy_version(self) -> str | None:
        return str(self.policy.version) if self.policy is not None else None

    def host_policy(self, host: HostRecord | None) -> str:
        """The host policy that judges ``host``: its own, else the policy's only one, else ``default``."""
        if host is not None and host.host_policy:
            return host.host_policy
        found = getattr(self.policy, "host_policies", None) if self.policy is not None else None
        names = list((found() if callable(found) else found) or [])
        if len(names) == 1:
            return str(names[0])
        return "default"

    def agent(self, record: HostRecord) -> AgentConnection:
        if self.connect is None or not record.agent_url:
            raise InputError(
                f"host {record.name!r} has no agent URL", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return self.connect(record)
