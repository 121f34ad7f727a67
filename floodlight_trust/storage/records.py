"""The typed records the stores hand out and take: frozen, times as ``datetime``, bytes as ``bytes``,
closed sets as enums. No engine, no SQL: every engine module maps its rows to these.

The enums are ``StrEnum``: their values are the strings on disk and in the JSON documents, so a
record compares equal to the text an older caller or a test expects (``HostStatus.TRUSTED ==
"trusted"``) and serialises unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from cryptography import x509

from floodlight_trust.clock import format_time
from floodlight_trust.errors import InputError
from floodlight_trust.evidence.tpm.structures import ClockInfo

# RFC 5280 CRLReason values accepted for revocation, by their canonical (cryptography) names.
# removeFromCRL only exists in delta CRLs, which this CA does not publish.
REVOCATION_REASONS: tuple[str, ...] = tuple(
    r.value for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl
)


def normalize_reason(reason: str) -> str:
    """``key-compromise``, ``key_compromise`` and ``keyCompromise`` all give ``keyCompromise``."""
    wanted = reason.replace("-", "").replace("_", "").lower()
    for name in REVOCATION_REASONS:
        if name.lower() == wanted:
            return name
    raise InputError(f"unknown revocation reason {reason!r}", hint="one of: " + ", ".join(REVOCATION_REASONS))


class HostStatus(enum.StrEnum):
    """What the VM last concluded about a registered host."""

    UNKNOWN = "unknown"  # registered, never judged
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"


class VnfStatus(enum.StrEnum):
    """The latest decision on a registered VNF name."""

    UNKNOWN = "unknown"  # rows of layouts before registration existed
    REGISTERED = "registered"  # registered, never enrolled
    ENROLLED = "enrolled"
    DENIED = "denied"
    REVOKED = "revoked"


class EnrollmentStatus(enum.StrEnum):
    """The manager's view of one issued VNF certificate."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"  # renewed: recorded, not revoked, still valid until not_after
    REVOKED = "revoked"


class CertificateStatus(enum.StrEnum):
    """A CA record's standing at a given time (:meth:`CertificateRecord.status`)."""

    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


class NoncePurpose(enum.StrEnum):
    """What evidence a challenge nonce was issued for."""

    HOST = "host"
    ENCLAVE = "enclave"


class CertificateAuthorityKind(enum.StrEnum):
    """Whose certificates a :class:`~floodlight_trust.storage.stores.CertificateStore` holds: the VNF
    CA's (trusted by Floodlight) or the admin CA's (never trusted by Floodlight), kept apart."""

    VNF = "vnf"
    ADMIN = "admin"


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class HostRecord:
    """A registered host and the VM's latest verdict on it."""

    name: str
    agent_url: str | None
    host_policy: str | None
    status: HostStatus
    platform_pck_sha256: str | None
    last_attested_at: datetime | None
    last_trusted_at: datetime | None
    last_contact_at: datetime | None
    policy_version: str | None
    reasons: tuple[dict[str, Any], ...]
    ima_state_json: str | None  # the incremental IMA appraisal state (evidence.ima), opaque here
    ima_entries: int
    simulated: bool
    platform: dict[str, Any] | None = None  # the platform identity of the last trusted host quote
    agent_tls_pem: str | None = None  # pinned TLS certificate (or CA) of the agent, for https agent URLs
    platform_key: str | None = None  # the platform this host is pinned to (platform_checks.platform_key)
    repin_requested_by: str | None = None  # an admin allowed the next trusted quote to re-pin the platform

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agent_url": self.agent_url,
            "host_policy": self.host_policy,
            "status": str(self.status),
            "platform_pck_sha256": self.platform_pck_sha256,
            "last_attested_at": _time(self.last_attested_at),
            "last_trusted_at": _time(self.last_trusted_at),
            "policy_version": self.policy_version,
            "ima_entries": self.ima_entries,
            "simulated": self.simulated,
            "reasons": list(self.reasons),
            "platform": self.platform_key,
            "repin_requested_by": self.repin_requested_by,
        }


@dataclass(frozen=True, slots=True)
class HostAttestationRecord:
    """What one recorded host verdict writes (:meth:`HostStore.record_attestation`).

    ``platform_*`` and ``ima_list_sha256`` are kept when None; ``ima_state_json`` and ``ima_entries``
    are written only when ``trusted``. ``platform_key`` pins the host's platform if none is pinned
    yet; with ``repin`` (an admin's request) it replaces the pin and clears the request.
    """

    trusted: bool
    at: datetime
    reasons: tuple[dict[str, Any], ...]
    policy_version: str | None
    platform_pck_sha256: str | None = None
    platform: dict[str, Any] | None = None
    ima_state_json: str | None = None
    ima_entries: int = 0
    ima_list_sha256: str | None = None
    simulated: bool = False
    platform_key: str | None = None
    repin: bool = False


@dataclass(frozen=True, slots=True)
class VnfRegistration:
    """A VNF identity: who registered which name on which host under which enroll rule, and the
    enclave (key and MRENCLAVE) the name is bound to since its first enrollment (None: unbound)."""

    host: str
    name: str
    enroll_rule: str | None
    registered_by: str | None
    expected_mrenclave: str | None
    bound_public_key_sha256: str | None
    bound_mrenclave: str | None
    bound_at: datetime | None


@dataclass(frozen=True, slots=True)
class VnfRecord:
    """A registered VNF with its latest decision and how many active certificates it holds."""

    host: str
    name: str
    mrenclave: str | None
    status: VnfStatus
    last_attested_at: datetime | None
    public_key_sha256: str | None
    active_certificates: int
    reasons: tuple[dict[str, Any], ...]
    enroll_rule: str | None
    registered_by: str | None
    bound_public_key_sha256: str | None
    bound_mrenclave: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "vnf": self.name,
            "mrenclave": self.mrenclave,
            "status": str(self.status),
            "last_attested_at": _time(self.last_attested_at),
            "public_key_sha256": self.public_key_sha256,
            "active_certificates": self.active_certificates,
            "reasons": list(self.reasons),
            "enroll_rule": self.enroll_rule,
            "registered_by": self.registered_by,
            "bound_public_key_sha256": self.bound_public_key_sha256,
            "bound_mrenclave": self.bound_mrenclave,
        }


@dataclass(frozen=True, slots=True)
class NewEnrollment:
    """A certificate issued to a VNF, as :meth:`EnrollmentStore.record_enrollment` records it."""

    host: str
    vnf: str
    serial: str  # lowercase hex, as pki.records.serial_hex writes it
    certificate_sha256: str
    public_key_sha256: str
    key_mode: str
    mrenclave: str
    policy_version: str | None
    audit_id: int
    issued_at: datetime
    not_after: datetime
    enclave_claims: dict[str, Any] | None = None  # the verified claims (JSON form), for reload-policy
    platform_key: str | None = None


@dataclass(frozen=True, slots=True)
class EnrollmentRecord:
    """One issued VNF certificate as the manager tracks it."""

    id: int
    host: str
    vnf: str
    serial: str  # lowercase hex
    certificate_sha256: str
    public_key_sha256: str
    key_mode: str
    mrenclave: str
    policy_version: str | None
    audit_id: int
    issued_at: datetime
    not_after: datetime
    status: EnrollmentStatus
    revoked_at: datetime | None
    revoke_reason: str | None
    superseded_at: datetime | None = None
    superseded_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = format_time(value) if isinstance(value, datetime) else value
        out["status"] = str(self.status)
        return out


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision of the VM: who asked, the evidence (as hashes), the policy version, every reason."""

    id: int
    at: datetime
    actor: str
    action: str  # "attest-host", "enroll", "revoke", "reattest-host", ...
    host: str | None
    vnf: str | None
    allowed: bool
    policy_version: str | None
    simulated: bool
    evidence: dict[str, Any]
    reasons: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": format_time(self.at),
            "actor": self.actor,
            "action": self.action,
            "host": self.host,
            "vnf": self.vnf,
            "allowed": self.allowed,
            "policy_version": self.policy_version,
            "simulated": self.simulated,
            "evidence": self.evidence,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class NonceRecord:
    """A stored challenge: never the nonce itself, only its selector and verifier (manager.nonces)."""

    selector: str  # hex of the first 8 bytes of SHA-256(nonce): the lookup key
    verifier: bytes  # the whole SHA-256(nonce), compared in constant time
    purpose: NoncePurpose
    host: str
    vnf: str | None
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EnrollmentReads:
    """What judging one VNF's enclave evidence reads (``Transaction.enrollment_reads``): the host,
    the VNF name's registration on it, the spent row of the evidence's nonce (by its selector; None:
    not spent) and the (host, VNF) the enclave's key is bound to, if any. ``host`` None: the host is
    not registered (and nothing else was read)."""

    host: HostRecord | None
    registration: VnfRegistration | None = None
    spent_nonce: NonceRecord | None = None
    key_holder: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """A certificate a CA issued, and its revocation if any. ``serial`` is the integer serial."""

    serial: int
    subject: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    sha256: str
    pem: str
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def status(self, at: datetime) -> CertificateStatus:
        """``revoked``, ``expired``, ``not-yet-valid`` or ``valid`` at ``at``."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return CertificateStatus.REVOKED
        if at > self.not_after:
            return CertificateStatus.EXPIRED
        if at < self.not_before:
            return CertificateStatus.NOT_YET_VALID
        return CertificateStatus.VALID

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))

    def to_json(self, at: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "serial": format(self.serial, "x"),
            "subject": self.subject,
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "issued_at": format_time(self.issued_at),
            "sha256": self.sha256,
            "revoked_at": _time(self.revoked_at),
            "revocation_reason": self.revocation_reason,
        }
        if at is not None:
            data["status"] = str(self.status(at))
        return data


@dataclass(frozen=True, slots=True)
class TpmPin:
    """A host's registered TPM: the AK its quotes must be signed by, and the last verified clock."""

    host: str
    ak_public: bytes  # TPMT_PUBLIC
    ak_name: str
    ak_spki_sha256: str
    ek_spki_sha256: str
    ek_trust: str  # "certificate", "pinned" or "unsafe"
    registered_at: datetime
    last_clock: ClockInfo | None
    last_firmware: int | None
    boot_pcrs: dict[str, dict[int, str]] | None = None  # of the first verified round after registration

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "ak_name": self.ak_name, "ak_spki_sha256": self.ak_spki_sha256,
                "ek_spki_sha256": self.ek_spki_sha256, "ek_trust": self.ek_trust,
                "registered_at": self.registered_at.isoformat()}  # fmt: skip
