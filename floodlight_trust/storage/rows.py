"""Rows to records, once for every engine: each builder reads a row by column name (a ``sqlite3.Row``
or psycopg's dict row) and the engine's :class:`~floodlight_trust.storage.dialect.Dialect` turns
its time columns back into UTC datetimes. Columns of the schema of storage/migrations.py.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.records import (
    AuditRecord,
    CertificateRecord,
    EnrollmentRecord,
    EnrollmentStatus,
    HostRecord,
    HostStatus,
    NoncePurpose,
    NonceRecord,
    TpmPin,
    VnfRecord,
    VnfRegistration,
    VnfStatus,
)


class Row(Protocol):
    """A result row of either driver, read by column name."""

    def __getitem__(self, column: str, /) -> Any: ...


def by_name(row: Any) -> Row:
    """``row`` to be read by many column names: a ``sqlite3.Row`` finds each name by a scan of its
    columns (reading a host and its VNF from one joined row took about 20 us that way), a dict by
    its hash (psycopg's rows already are dicts)."""
    return row if isinstance(row, dict) else dict(zip(row.keys(), row, strict=True))


def host_record(r: Row, d: Dialect) -> HostRecord:
    """A ``manager_hosts`` row."""
    return HostRecord(
        r["name"],
        r["agent_url"],
        r["host_policy"],
        HostStatus(r["status"]),
        r["platform_pck_sha256"],
        d.time_or_none(r["last_attested_at"]),
        d.time_or_none(r["last_trusted_at"]),
        d.time_or_none(r["last_contact_at"]),
        r["policy_version"],
        tuple(json.loads(r["reasons_json"])),
        r["ima_state_json"],
        int(r["ima_entries"]),
        bool(r["simulated"]),
        json.loads(r["platform_json"]) if r["platform_json"] else None,
        r["agent_tls_pem"],
        r["platform_key"],
        r["repin_requested_by"],
    )


def vnf_registration(r: Row, d: Dialect, prefix: str = "") -> VnfRegistration:
    """A ``manager_vnfs`` row as a registration; ``prefix``: its columns' prefix in a join."""
    return VnfRegistration(
        r[prefix + "host"],
        r[prefix + "name"],
        r[prefix + "enroll_rule"],
        r[prefix + "registered_by"],
        r[prefix + "expected_mrenclave"],
        r[prefix + "bound_public_key_sha256"],
        r[prefix + "bound_mrenclave"],
        d.time_or_none(r[prefix + "bound_at"]),
    )


def vnf_record(r: Row, d: Dialect) -> VnfRecord:
    """A ``manager_vnfs`` row with its count of active certificates (column ``active``)."""
    return VnfRecord(
        r["host"],
        r["name"],
        r["mrenclave"],
        VnfStatus(r["status"]),
        d.time_or_none(r["last_attested_at"]),
        r["public_key_sha256"],
        int(r["active"]),
        tuple(json.loads(r["reasons_json"])),
        r["enroll_rule"],
        r["registered_by"],
        r["bound_public_key_sha256"],
        r["bound_mrenclave"],
    )


def enrollment_record(r: Row, d: Dialect) -> EnrollmentRecord:
    """A ``manager_enrollments`` row."""
    return EnrollmentRecord(
        int(r["id"]),
        r["host"],
        r["vnf"],
        r["serial"],
        r["certificate_sha256"],
        r["public_key_sha256"],
        r["key_mode"],
        r["mrenclave"],
        r["policy_version"],
        int(r["audit_id"]),
        d.time(r["issued_at"]),
        d.time(r["not_after"]),
        EnrollmentStatus(r["status"]),
        d.time_or_none(r["revoked_at"]),
        r["revoke_reason"],
        d.time_or_none(r["superseded_at"]),
        r["superseded_by"],
    )


def audit_record(r: Row, d: Dialect) -> AuditRecord:
    """A ``manager_audit`` row."""
    return AuditRecord(
        int(r["id"]),
        d.time(r["at"]),
        r["actor"],
        r["action"],
        r["host"],
        r["vnf"],
        bool(r["allowed"]),
        r["policy_version"],
        bool(r["simulated"]),
        json.loads(r["evidence_json"]),
        tuple(json.loads(r["reasons_json"])),
    )


def certificate_record(r: Row, d: Dialect) -> CertificateRecord:
    """A row of a CA's table (``pki_certificates``, ``pki_admin_certificates``)."""
    return CertificateRecord(
        serial=int(r["serial"], 16),
        subject=r["subject"],
        not_before=d.time(r["not_before"]),
        not_after=d.time(r["not_after"]),
        issued_at=d.time(r["issued_at"]),
        sha256=r["sha256"],
        pem=r["pem"],
        revoked_at=d.time_or_none(r["revoked_at"]),
        revocation_reason=r["revocation_reason"],
    )


def nonce_record(r: Row, d: Dialect, prefix: str = "") -> NonceRecord:
    """A ``manager_nonces`` row; ``prefix``: its columns' prefix in a join."""
    return NonceRecord(
        r[prefix + "selector"],
        bytes(r[prefix + "verifier"]),
        NoncePurpose(r[prefix + "purpose"]),
        r[prefix + "host"],
        r[prefix + "vnf"],
        d.instant(r[prefix + "issued_at"]),
        d.instant(r[prefix + "expires_at"]),
        d.instant_or_none(r[prefix + "used_at"]),
    )


def tpm_pin(r: Row, d: Dialect) -> TpmPin:
    """A ``manager_host_tpm`` row (its JSON documents: see :func:`tpm_round_json`)."""
    clock, firmware = None, None
    if r["last_clock_json"]:
        c = json.loads(r["last_clock_json"])
        clock = ClockInfo(int(c["clock"]), int(c["reset_count"]), int(c["restart_count"]), bool(c["safe"]))
        firmware = int(c["firmware"])
    boot = None
    if r["boot_pcrs_json"]:
        boot = {b: {int(p): str(v) for p, v in vals.items()} for b, vals in json.loads(r["boot_pcrs_json"]).items()}
    return TpmPin(r["host"], bytes(r["ak_public"]), r["ak_name"], r["ak_spki_sha256"], r["ek_spki_sha256"],
                  r["ek_trust"], d.time(r["registered_at"]), clock, firmware, boot)  # fmt: skip


def tpm_round_json(clock: ClockInfo, firmware: int, boot_pcrs: dict[str, dict[int, str]]) -> tuple[str, str]:
    """The ``last_clock_json`` and ``boot_pcrs_json`` documents of a verified TPM round (:func:`tpm_pin` reads them)."""
    doc = {"clock": clock.clock, "reset_count": clock.reset_count, "restart_count": clock.restart_count,
           "safe": clock.safe, "firmware": firmware}  # fmt: skip
    return json.dumps(doc), json.dumps({b: {str(p): v for p, v in vals.items()} for b, vals in boot_pcrs.items()})
