"""What the Verification Manager decides: reasons (deny or note), host verdicts, enrollment results.

Every part of the workflow speaks in :class:`Reason` values; :class:`Denied` stops a step with its
reasons and is turned into a recorded denial by the step that raised it (it never escapes).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from floodlight_trust.clock import format_time
from floodlight_trust.errors import FtrustError
from floodlight_trust.protocol import validate_outbound

DENY = "deny"
NOTE = "note"


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason of a decision, in the same shape as the policy's reasons.

    ``level`` is ``"deny"`` (this reason refuses) or ``"note"`` (information kept with the decision,
    e.g. an insecure option that was allowed, or a rule judged on the full IMA list only). Only
    deny-level reasons make a verdict negative or appear in revocation texts and denial summaries;
    notes are recorded in the audit log and returned in the JSON documents.
    """

    rule: str
    message: str
    location: str | None = None
    evidence: Any = None
    level: str = DENY

    @property
    def denies(self) -> bool:
        return self.level != NOTE

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "location": self.location,
            "message": self.message,
            "evidence": self.evidence,
            "level": self.level,
        }


# A nonce checked as fresh was burnt by a concurrent request before this one could record it.
NONCE_REPLAYED = Reason("protocol.nonce", "nonce replayed: it was used concurrently")


def denials(reasons: Sequence[Reason]) -> list[Reason]:
    """The deny-level reasons (what refused), without the notes."""
    return [r for r in reasons if r.denies]


def denial_summary(reasons: Sequence[Reason], limit: int = 3) -> str:
    """The first ``limit`` deny-level messages, for revocation texts and log lines."""
    return "; ".join(r.message for r in denials(reasons)[:limit])


def reasons_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [r.to_json() for r in reasons]


class Denied(Exception):
    """Internal: stop a workflow with reasons (turned into a recorded denial, never escapes)."""

    def __init__(self, *reasons: Reason):
        super().__init__(reasons[0].message if reasons else "denied")
        self.reasons = list(reasons)


def _json_safe(value: Any) -> Any:
    """``value`` as JSON types only (for the audit log, ``--json`` and the API): any mapping
    (a policy reason's evidence is a read-only MappingProxyType) becomes an object, sets become
    sorted arrays, enums their values, bytes hex, times RFC 3339; never a Python repr of a container."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Enum):
        return _json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return format_time(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def decision_reasons(decision: Any, prefix: str = "") -> list[Reason]:
    """The reasons of a policy Decision as :class:`Reason` values, notes included (``level``)."""
    out = []
    for r in getattr(decision, "reasons", ()):
        loc = getattr(r, "location", None)
        out.append(
            Reason(
                rule=f"{prefix}{getattr(r, 'rule', 'policy')}",
                message=str(getattr(r, "message", r)),
                location=str(loc) if loc is not None else None,
                evidence=_json_safe(getattr(r, "evidence", None)),
                level=NOTE if getattr(r, "level", DENY) == NOTE else DENY,
            )
        )
    return out


def error_reason(rule: str, e: FtrustError) -> Reason:
    """A project error as a deny-level reason (its hint and location kept)."""
    return Reason(rule, e.message + (f" (hint: {e.hint})" if e.hint else ""), str(e.location) if e.location else None)


@dataclass
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


@dataclass
class EnrollmentResult:
    host: str
    vnf: str
    allowed: bool
    reasons: list[Reason]
    policy_version: str | None
    audit_id: int
    simulated: bool
    key_mode: str
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
            "key_mode": self.key_mode,
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
