"""What the Verification Manager answers: host verdicts and enrollment results, frozen.

Every part of the workflow speaks in :class:`~floodlight_trust.reasons.Reason` values (the one
reason type of evidence, policy and judges); the judges (``floodlight_trust/judges/``) decide, and
these are what the manager returns once it has recorded (and issued or revoked) what they decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from floodlight_trust.clock import format_time
from floodlight_trust.protocol import validate_outbound
from floodlight_trust.protocol.evidence import KeyMode
from floodlight_trust.reasons import Reason, reasons_json

# A nonce checked as fresh was burnt by a concurrent request before this one could record it.
NONCE_REPLAYED = Reason("protocol.nonce", "nonce replayed: it was used concurrently")


class Denied(Exception):
    """Internal to the shell: a commit-time check (a concurrent replay or binding) rolls back the
    transaction that records a decision. The judges never raise it: they return every reason."""

    def __init__(self, *reasons: Reason):
        super().__init__(reasons[0].message if reasons else "denied")
        self.reasons = list(reasons)


@dataclass(frozen=True, kw_only=True, slots=True)
class HostVerdict:
    host: str
    trusted: bool
    reasons: list[Reason]
    policy_version: str | None
    audit_id: int
    simulated: bool
    attested_at: datetime
    ima_entries: int = 0
    revoked_serials: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "host": self.host,
            "trusted": self.trusted,
            "reasons": reasons_json(self.reasons),
            "policy_version": self.policy_version,
            "audit_id": self.audit_id,
            "simulated": self.simulated,
            "attested_at": format_time(self.attested_at),
            "ima_entries": self.ima_entries,
            "revoked_serials": self.revoked_serials,
        }
        validate_outbound("host_verdict", doc)
        return doc


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrollmentResult:
    host: str
    vnf: str
    allowed: bool
    reasons: list[Reason]
    policy_version: str | None
    audit_id: int
    simulated: bool
    key_mode: KeyMode
    serial: str | None = None
    not_after: datetime | None = None
    certificate_chain: list[str] = field(default_factory=list)
    wrapped_key: dict[str, Any] | None = None
    kept: bool = False  # re-attested, and its current certificate kept (``renew_before``): nothing issued
    # The VM's signature binding these credentials to the enrollment nonce (protocol/provisioning.py).
    provisioning: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "host": self.host,
            "vnf": self.vnf,
            "allowed": self.allowed,
            "reasons": reasons_json(self.reasons),
            "policy_version": self.policy_version,
            "audit_id": self.audit_id,
            "simulated": self.simulated,
            "key_mode": self.key_mode.value,
        }
        if self.allowed:
            doc |= {
                "serial": self.serial,
                "not_after": format_time(self.not_after) if self.not_after else None,
                "certificate_chain": self.certificate_chain,
                "wrapped_key": self.wrapped_key,
                "certificate_kept": self.kept,
            }
            if self.provisioning is not None:
                doc["provisioning"] = self.provisioning
        validate_outbound("enrollment", doc)
        return doc

    def credentials_message(self) -> dict[str, Any]:
        msg = {
            "host": self.host,
            "vnf": self.vnf,
            "serial": self.serial,
            "certificate_chain": self.certificate_chain,
            "wrapped_key": self.wrapped_key,
        }
        if self.provisioning is not None:
            msg["provisioning"] = self.provisioning
        validate_outbound("credentials", msg)
        return msg
