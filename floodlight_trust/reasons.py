"""The one reason type of every decision: evidence appraisal, policy evaluation and the Verification
Manager's judges all speak in :class:`Reason` values.

``rule`` is the reason's stable code (``protocol.nonce``, ``ima.template-hash-mismatch``,
``host.tpm.signature``, or the name of the policy statement that decided): metrics, tests and the
audit log key on it. ``level`` says whether the reason refuses (:attr:`ReasonLevel.DENY`) or is
information kept with the decision (:attr:`ReasonLevel.NOTE`: an insecure option that was allowed,
a rule judged on the whole list only). The JSON form is the one the audit log, ``--json`` output
and the HTTP API carry (``{"rule", "location", "message", "evidence", "level"}``).

Pure: no I/O; imported by ``evidence/``, ``policy_lang/``, the judges and the manager.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floodlight_trust.errors import FtrustError


class ReasonLevel(StrEnum):
    DENY = "deny"  # this reason refuses
    NOTE = "note"  # information kept with the decision; never refuses


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason of a decision. Frozen; ``evidence`` is a read-only mapping (or None)."""

    rule: str  # the stable code
    message: str
    location: str | None = None  # "file:line" of a policy statement, or where in the evidence
    evidence: Mapping[str, Any] | None = None
    level: ReasonLevel = ReasonLevel.DENY

    def __post_init__(self) -> None:
        if self.evidence is not None and not isinstance(self.evidence, MappingProxyType):
            object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))
        if not isinstance(self.level, ReasonLevel):
            object.__setattr__(self, "level", ReasonLevel(self.level))

    @property
    def denies(self) -> bool:
        return self.level is ReasonLevel.DENY

    def prefixed(self, prefix: str) -> Reason:
        """This reason with ``prefix`` before its code (``integrity-enclave: ...``)."""
        return dataclasses.replace(self, rule=prefix + self.rule) if prefix else self

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "location": self.location,
            "message": self.message,
            "evidence": json_safe(self.evidence),
            "level": self.level.value,
        }

    @classmethod
    def note(
        cls, rule: str, message: str, location: str | None = None, evidence: Mapping[str, Any] | None = None
    ) -> Reason:
        return cls(rule, message, location, evidence, ReasonLevel.NOTE)

    @classmethod
    def from_error(cls, rule: str, e: FtrustError) -> Reason:
        """A project error as a deny-level reason (its hint and location kept)."""
        return cls(rule, e.message + (f" (hint: {e.hint})" if e.hint else ""), str(e.location) if e.location else None)


def denials(reasons: Iterable[Reason]) -> list[Reason]:
    """The deny-level reasons (what refused), without the notes."""
    return [r for r in reasons if r.denies]


def denial_summary(reasons: Iterable[Reason], limit: int = 3) -> str:
    """The first ``limit`` deny-level messages, for revocation texts and log lines."""
    return "; ".join(r.message for r in denials(reasons)[:limit])


def reasons_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [r.to_json() for r in reasons]


def json_safe(value: Any) -> Any:
    """``value`` as JSON types only (for the audit log, ``--json`` and the API): any mapping
    becomes an object, sets become sorted arrays, enums their values, bytes hex, times RFC 3339;
    never a Python repr of a container."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        from floodlight_trust.clock import format_time

        return format_time(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)
