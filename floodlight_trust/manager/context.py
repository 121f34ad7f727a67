"""What every step of the Verification Manager's workflow shares: storage, the CA, the policy in
force, the operator's settings, the trust anchors, the clock and the way to reach a host's agent.

:class:`ManagerContext` is declared once: its dependencies as keyword arguments and the operator's
``[vm]`` settings as one frozen :class:`ManagerSettings`.
:class:`~floodlight_trust.manager.workflow.VerificationManager` is a :class:`ManagerContext` with
the workflow's steps (host attestation, enrollment, revocation); the steps hold it and read the
policy live, so that ``set_policy`` reaches every step at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from floodlight_trust import clock
from floodlight_trust.errors import InputError, ServiceError
from floodlight_trust.judges.enrollment import EnrollmentSettings
from floodlight_trust.judges.host import HostSettings, host_policy_of
from floodlight_trust.manager.nonces import Nonces
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING, QuoteVerifier
from floodlight_trust.manager.tpm_attestation import TpmSettings
from floodlight_trust.protocol.evidence import HostEvidence, KeyMode
from floodlight_trust.storage.records import HostRecord
from floodlight_trust.storage.stores import Storage

if TYPE_CHECKING:
    from floodlight_trust.evidence.dcap import TrustAnchor
    from floodlight_trust.manager.quote_verification import CollateralFetcher, IasVerifier
    from floodlight_trust.pki.ca import CertificateAuthority
    from policy_lang.compile import Policy

log = logging.getLogger("floodlight_trust.manager")


class AgentConnection(Protocol):
    """What the VM needs from an agent (``manager.client.AgentClient`` over HTTP). Evidence comes
    as the agent sent it: the VM validates and parses it once (``protocol.evidence``)."""

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> HostEvidence | Mapping[str, Any]: ...

    def enclave_evidence(self, vnf: str, nonce: bytes) -> Any: ...

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ManagerSettings:
    """The operator's settings the workflow runs by (configuration section ``[vm]``)."""

    nonce_ttl_seconds: int = 60
    host_trust_seconds: int = 120  # a host's trusted verdict lets its VNFs enroll this long
    grace_period_seconds: int = 90  # an unreachable agent's host keeps its VNFs this long
    key_mode: KeyMode = KeyMode.ENCLAVE
    require_linkable_epid: bool = False
    # Re-attestation renews a VNF's certificate only when less than this is left of it (None:
    # every round). The enclave evidence is checked every round either way.
    renew_before_seconds: int | None = None
    # Enroll rules the operator lets register a VNF name on its first enrollment
    # (vm.self_registering_enroll_rules); every other VNF name needs an admin's registration.
    self_registering_rules: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "key_mode", KeyMode(self.key_mode))
        except ValueError:
            raise InputError(
                f"unknown key mode {self.key_mode!r}", hint="vm.key_mode is 'enclave' or 'vm-generated'"
            ) from None
        object.__setattr__(self, "self_registering_rules", frozenset(self.self_registering_rules))

    @property
    def host_trust(self) -> timedelta:
        return timedelta(seconds=self.host_trust_seconds)

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_period_seconds)

    @property
    def renew_before(self) -> timedelta | None:
        return timedelta(seconds=self.renew_before_seconds) if self.renew_before_seconds is not None else None

    @property
    def hosts(self) -> HostSettings:
        """What the host judge needs of these settings."""
        return HostSettings(require_linkable_epid=self.require_linkable_epid)

    @property
    def enrollments(self) -> EnrollmentSettings:
        """What the enrollment judge needs of these settings."""
        return EnrollmentSettings(host_trust=self.host_trust, require_linkable_epid=self.require_linkable_epid)


class ManagerContext:
    """Storage, CA, policy, settings, trust anchors and clock of one Verification Manager."""

    def __init__(
        self,
        *,
        storage: Storage,
        ca: CertificateAuthority | None,
        policy: Policy | None,
        anchors: Sequence[TrustAnchor],
        settings: ManagerSettings | None = None,
        connect: Callable[[HostRecord], AgentConnection] | None = None,
        now: Callable[[], datetime] = clock.now,
        ias: IasVerifier | None = None,
        collateral: CollateralFetcher | None = None,
    ):
        self.settings = settings or ManagerSettings()
        self.storage = storage  # every record goes through its stores (storage/stores.py)
        self.ca = ca
        # Nonces are authenticated with the CA's nonce key (every replica holding the CA checks them).
        self.nonces = Nonces(storage, ttl_seconds=self.settings.nonce_ttl_seconds, key=self._nonce_key)
        self.policy = policy
        self.anchors = list(anchors)
        self.connect = connect
        self.now = now
        self.quotes = QuoteVerifier(self.anchors, ias, collateral)
        self.tpm_settings = TpmSettings()  # the operator's [tpm] settings (build_service sets them)
        self._policy_lock = threading.Lock()
        self.simulated = self.quotes.simulated
        if self.simulated:
            log.warning("%s: trust_simulated_sgx = true; NEVER use this in production", SIMULATED_WARNING)

    # The settings every step reads (one source: ``settings``).
    @property
    def host_trust(self) -> timedelta:
        return self.settings.host_trust

    @property
    def grace(self) -> timedelta:
        return self.settings.grace

    @property
    def key_mode(self) -> KeyMode:
        return self.settings.key_mode

    @property
    def renew_before(self) -> timedelta | None:
        return self.settings.renew_before

    @property
    def self_registering_rules(self) -> frozenset[str]:
        return self.settings.self_registering_rules

    @self_registering_rules.setter
    def self_registering_rules(self, rules: frozenset[str]) -> None:
        self.settings = dataclasses.replace(self.settings, self_registering_rules=frozenset(rules))

    def _nonce_key(self) -> bytes:
        from floodlight_trust.manager.nonces import process_key

        return self.ca.nonce_key() if self.ca is not None else process_key()

    @property
    def issuer(self) -> CertificateAuthority:
        """The CA that issues and revokes (a VM made without one, for appraisal only, has none)."""
        if self.ca is None:
            raise ServiceError("this Verification Manager has no CA: it issues and revokes nothing")
        return self.ca

    def set_policy(self, policy: Policy | None) -> None:
        """Swap the policy; later decisions use it (``manager.reload`` re-evaluates and revokes first).

        The next round of each host appraises its whole IMA list again under the new policy version.
        """
        with self._policy_lock:
            self.policy = policy

    @property
    def policy_version(self) -> str | None:
        return str(self.policy.version) if self.policy is not None else None

    def host_policy(self, host: HostRecord | None) -> str:
        """The host policy that judges ``host`` (``judges.host.host_policy_of``)."""
        return host_policy_of(host, self.policy)

    def agent(self, record: HostRecord) -> AgentConnection:
        if self.connect is None or not record.agent_url:
            raise InputError(
                f"host {record.name!r} has no agent URL", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return self.connect(record)
