"""Audit records: every decision of the VM, with who asked, the evidence (as hashes), the policy
version, the verdict and every reason. Written in the same transaction as the state it explains."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from floodlight_trust.clock import format_time
from floodlight_trust.storage.database import Database


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: str
    actor: str
    action: str  # "attest-host", "enroll", "revoke", "reattest-host", ...
    host: str | None
    vnf: str | None
    allowed: bool
    policy_version: str | None
    simulated: bool
    evidence: dict[str, Any]
    reasons: list[dict[str, Any]]

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> AuditRecord:
        return cls(
            r["id"],
            r["at"],
            r["actor"],
            r["action"],
            r["host"],
            r["vnf"],
            bool(r["allowed"]),
            r["policy_version"],
            bool(r["simulated"]),
            json.loads(r["evidence_json"]),
            json.loads(r["reasons_json"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class AuditLog:
    def __init__(self, db: Database):
        self.db = db

    def record(
        self,
        tx: sqlite3.Connection,
        *,
        at: datetime,
        actor: str,
        action: str,
        allowed: bool,
        host: str | None = None,
        vnf: str | None = None,
        policy_version: str | None = None,
        simulated: bool = False,
        evidence: dict[str, Any] | None = None,
        reasons: list[dict[str, Any]] | None = None,
    ) -> int:
        cur = tx.execute(
            "INSERT INTO manager_audit (at, at_ts, actor, action, host, vnf, allowed, policy_version, simulated,"
            " evidence_json, reasons_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                format_time(at),
                at.timestamp(),
                actor,
                action,
                host,
                vnf,
                int(allowed),
                policy_version,
                int(simulated),
                json.dumps(evidence or {}, sort_keys=True),
                json.dumps(reasons or []),
            ),
        )
        return int(cur.lastrowid or 0)

    def records(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        if since is None:
            rows = self.db.query("SELECT * FROM manager_audit ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.db.query(
                "SELECT * FROM manager_audit WHERE at_ts >= ? ORDER BY id DESC LIMIT ?", (since.timestamp(), limit)
            )
        return [AuditRecord.from_row(r) for r in reversed(rows)]

    def get(self, audit_id: int) -> AuditRecord | None:
        rows = self.db.query("SELECT * FROM manager_audit WHERE id = ?", (audit_id,))
        return AuditRecord.from_row(rows[0]) if rows else None
