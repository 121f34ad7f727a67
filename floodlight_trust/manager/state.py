"""The Verification Manager's tables (hosts, VNFs, enrollments, nonces, audit) on the shared storage.

Every function that changes more than one row takes ``tx`` (an open transaction from
``Database.transaction()``), so the workflow can put a certificate, its enrollment record and the
audit record of the decision into ONE transaction: a crash leaves all of them or none.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from floodlight_trust.clock import format_time
from floodlight_trust.errors import ConflictError, NotFoundError
from floodlight_trust.storage.database import Database, Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "manager",
        1,
        """
        CREATE TABLE manager_nonces (
            selector TEXT PRIMARY KEY, verifier BLOB NOT NULL, purpose TEXT NOT NULL, host TEXT NOT NULL,
            vnf TEXT, issued_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL);
        CREATE INDEX manager_nonces_expiry ON manager_nonces (expires_at);
        CREATE TABLE manager_hosts (
            name TEXT PRIMARY KEY, agent_url TEXT, host_policy TEXT,
            status TEXT NOT NULL DEFAULT 'unknown', platform_pck_sha256 TEXT, platform_json TEXT,
            last_attested_at TEXT, last_trusted_at TEXT, last_contact_at TEXT, policy_version TEXT,
            reasons_json TEXT NOT NULL DEFAULT '[]', ima_state_json TEXT, ima_entries INTEGER NOT NULL DEFAULT 0,
            ima_list_sha256 TEXT, simulated INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
        CREATE TABLE manager_vnfs (
            host TEXT NOT NULL, name TEXT NOT NULL, mrenclave TEXT, status TEXT NOT NULL DEFAULT 'unknown',
            last_attested_at TEXT, public_key_sha256 TEXT, reasons_json TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (host, name));
        CREATE TABLE manager_audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, at_ts REAL NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, host TEXT, vnf TEXT, allowed INTEGER NOT NULL, policy_version TEXT,
            simulated INTEGER NOT NULL DEFAULT 0, evidence_json TEXT NOT NULL, reasons_json TEXT NOT NULL);
        CREATE INDEX manager_audit_time ON manager_audit (at_ts);
        CREATE TABLE manager_enrollments (
            id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, vnf TEXT NOT NULL,
            serial TEXT NOT NULL UNIQUE, certificate_sha256 TEXT NOT NULL, public_key_sha256 TEXT NOT NULL,
            key_mode TEXT NOT NULL, mrenclave TEXT NOT NULL, policy_version TEXT,
            audit_id INTEGER NOT NULL REFERENCES manager_audit (id), issued_at TEXT NOT NULL,
            not_after TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active', revoked_at TEXT, revoke_reason TEXT);
        CREATE INDEX manager_enrollments_vnf ON manager_enrollments (host, vnf, status)
        """,
    ),
    # Issue 8: renewals supersede a certificate (recorded, not revoked); the verified enclave claims
    # are kept so `ftrust vm reload-policy` can re-judge every enrollment under a new policy.
    Migration(
        "manager-lifecycle",
        1,
        """
        ALTER TABLE manager_enrollments ADD COLUMN superseded_at TEXT;
        ALTER TABLE manager_enrollments ADD COLUMN superseded_by TEXT;
        ALTER TABLE manager_enrollments ADD COLUMN enclave_claims_json TEXT
        """,
    ),
    # A component of its own, so it orders independently of other "manager" migrations.
    Migration("manager-agent-tls", 1, "ALTER TABLE manager_hosts ADD COLUMN agent_tls_pem TEXT"),
    # Issue 11: hosts exist only by registration and each holds one platform (platform_checks.
    # platform_key); every certificate records the platform it was issued on, so distrusting a host
    # revokes whatever was issued on its machine, under any name. Re-pinning is an admin request.
    Migration(
        "manager-platforms",
        1,
        """
        ALTER TABLE manager_hosts ADD COLUMN platform_key TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_by TEXT;
        ALTER TABLE manager_hosts ADD COLUMN repin_requested_at TEXT;
        UPDATE manager_hosts SET platform_key = 'dcap-pck:' || platform_pck_sha256 WHERE platform_pck_sha256 IS NOT NULL;
        UPDATE manager_hosts SET platform_key = 'epid:' || json_extract(platform_json, '$.epid_group_id') || ':'
            || COALESCE(json_extract(platform_json, '$.epid_pseudonym'), '')
            WHERE platform_key IS NULL AND json_extract(platform_json, '$.epid_group_id') IS NOT NULL;
        CREATE INDEX manager_hosts_platform ON manager_hosts (platform_key);
        ALTER TABLE manager_enrollments ADD COLUMN platform_key TEXT;
        CREATE INDEX manager_enrollments_platform ON manager_enrollments (platform_key, status)
        """,
    ),
    # Issue 11: a VNF identity is a registration (host, name, enroll rule) by an admin, or by a
    # self-registering enroll rule; the name is bound to the enclave key and MRENCLAVE of its first
    # enrollment until an admin releases it. Rows of VNFs that only ever had denials are dropped
    # (anyone could create them before); enrolled ones are registered and bound to their enclave.
    Migration(
        "manager-vnf-registry",
        1,
        """
        ALTER TABLE manager_vnfs ADD COLUMN enroll_rule TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_by TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN registered_at TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN expected_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_public_key_sha256 TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_mrenclave TEXT;
        ALTER TABLE manager_vnfs ADD COLUMN bound_at TEXT;
        DELETE FROM manager_vnfs WHERE NOT EXISTS
            (SELECT 1 FROM manager_enrollments e WHERE e.host = manager_vnfs.host AND e.vnf = manager_vnfs.name);
        UPDATE manager_vnfs SET registered_by = 'migrated (enrolled before registration existed)',
            registered_at = last_attested_at;
        UPDATE manager_vnfs SET bound_public_key_sha256 = public_key_sha256, bound_mrenclave = mrenclave,
            bound_at = last_attested_at WHERE status = 'enrolled';
        CREATE INDEX manager_vnfs_bound_key ON manager_vnfs (bound_public_key_sha256)
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class HostRecord:
    name: str
    agent_url: str | None
    host_policy: str | None
    status: str  # "unknown" | "trusted" | "untrusted"
    platform_pck_sha256: str | None
    last_attested_at: str | None
    last_trusted_at: str | None
    last_contact_at: str | None
    policy_version: str | None
    reasons: list[dict[str, Any]]
    ima_state_json: str | None
    ima_entries: int
    simulated: bool
    platform: dict[str, Any] | None = None  # the platform identity of the last trusted host quote
    agent_tls_pem: str | None = None  # pinned TLS certificate (or CA) of the agent, for https agent URLs
    platform_key: str | None = None  # the platform this host is pinned to (platform_checks.platform_key)
    repin_requested_by: str | None = None  # an admin allowed the next trusted quote to re-pin the platform

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> HostRecord:
        keys = r.keys()
        return cls(
            r["name"],
            r["agent_url"],
            r["host_policy"],
            r["status"],
            r["platform_pck_sha256"],
            r["last_attested_at"],
            r["last_trusted_at"],
            r["last_contact_at"],
            r["policy_version"],
            json.loads(r["reasons_json"]),
            r["ima_state_json"],
            r["ima_entries"],
            bool(r["simulated"]),
            json.loads(r["platform_json"]) if r["platform_json"] else None,
            r["agent_tls_pem"] if "agent_tls_pem" in keys else None,
            r["platform_key"] if "platform_key" in keys else None,
            r["repin_requested_by"] if "repin_requested_by" in keys else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agent_url": self.agent_url,
            "host_policy": self.host_policy,
            "status": self.status,
            "platform_pck_sha256": self.platform_pck_sha256,
            "last_attested_at": self.last_attested_at,
            "last_trusted_at": self.last_trusted_at,
            "policy_version": self.policy_version,
            "ima_entries": self.ima_entries,
            "simulated": self.simulated,
            "reasons": self.reasons,
            "platform": self.platform_key,
            "repin_requested_by": self.repin_requested_by,
        }


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
    bound_at: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> VnfRegistration:
        return cls(
            r["host"],
            r["name"],
            r["enroll_rule"],
            r["registered_by"],
            r["expected_mrenclave"],
            r["bound_public_key_sha256"],
            r["bound_mrenclave"],
            r["bound_at"],
        )


@dataclass(frozen=True, slots=True)
class EnrollmentRecord:
    id: int
    host: str
    vnf: str
    serial: str
    certificate_sha256: str
    public_key_sha256: str
    key_mode: str
    mrenclave: str
    policy_version: str | None
    audit_id: int
    issued_at: str
    not_after: str
    status: str  # "active" | "superseded" (renewed; still valid until not_after) | "revoked"
    revoked_at: str | None
    revoke_reason: str | None
    superseded_at: str | None = None
    superseded_by: str | None = None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> EnrollmentRecord:
        return cls(*(r[k] for k in cls.__slots__))

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class ManagerState:
    """Typed access to the manager tables of one :class:`Database`."""

    def __init__(self, db: Database):
        self.db = db
        db.migrate(MIGRATIONS)

    # -- hosts -----------------------------------------------------------------------------------
    def add_host(
        self,
        name: str,
        agent_url: str | None,
        host_policy: str | None,
        *,
        at: datetime,
        agent_tls_pem: str | None = None,
        replace: bool = False,
    ) -> HostRecord:
        """Register a host (the only way a host comes to exist); ``agent_tls_pem`` pins its agent's
        TLS certificate or CA. A name already registered is a ConflictError unless ``replace``, which
        changes its agent URL, host policy and pin but keeps its platform and its certificates."""
        with self.db.transaction() as tx:
            exists = tx.execute("SELECT 1 FROM manager_hosts WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise ConflictError(
                    f"host {name!r} is already registered",
                    hint="`ftrust vm hosts add NAME --replace ...` changes its agent URL; "
                    "`ftrust vm hosts remove NAME` removes it",
                )
            tx.execute(
                "INSERT INTO manager_hosts (name, agent_url, host_policy, created_at, agent_tls_pem)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET agent_url = excluded.agent_url,"
                " host_policy = COALESCE(excluded.host_policy, manager_hosts.host_policy),"
                " agent_tls_pem = COALESCE(excluded.agent_tls_pem, manager_hosts.agent_tls_pem)",
                (name, agent_url, host_policy, format_time(at), agent_tls_pem),
            )
        return self.host(name)

    def remove_host(self, tx: sqlite3.Connection, name: str) -> None:
        """Forget a registered host and its VNF rows (its enrollments stay, for the audit trail)."""
        tx.execute("DELETE FROM manager_vnfs WHERE host = ?", (name,))
        tx.execute("DELETE FROM manager_hosts WHERE name = ?", (name,))

    def platform_owner(self, tx: sqlite3.Connection, key: str, *, other_than: str) -> str | None:
        """The registered host other than ``other_than`` that holds platform ``key``, if any."""
        row = tx.execute(
            "SELECT name FROM manager_hosts WHERE platform_key = ? AND name != ? ORDER BY name LIMIT 1",
            (key, other_than),
        ).fetchone()
        return str(row[0]) if row else None

    def host_platform_tx(self, tx: sqlite3.Connection, name: str) -> str | None:
        """The platform ``name`` is pinned to (None: not yet trusted, or unknown)."""
        row = tx.execute("SELECT platform_key FROM manager_hosts WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row and row[0] else None

    def request_repin(self, tx: sqlite3.Connection, name: str, *, by: str, at: datetime) -> None:
        """Let the next trusted quote of ``name`` pin another platform (a legitimate PCK re-issue)."""
        tx.execute(
            "UPDATE manager_hosts SET repin_requested_by = ?, repin_requested_at = ? WHERE name = ?",
            (by, format_time(at), name),
        )

    def find_host(self, name: str) -> HostRecord | None:
        rows = self.db.query("SELECT * FROM manager_hosts WHERE name = ?", (name,))
        return HostRecord.from_row(rows[0]) if rows else None

    def host(self, name: str) -> HostRecord:
        found = self.find_host(name)
        if found is None:
            raise NotFoundError(
                f"unknown host {name!r}: not registered", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return found

    def hosts(self) -> list[HostRecord]:
        return [HostRecord.from_row(r) for r in self.db.query("SELECT * FROM manager_hosts ORDER BY name")]

    def record_host_attestation(
        self,
        tx: sqlite3.Connection,
        name: str,
        *,
        trusted: bool,
        at: datetime,
        reasons: list[dict[str, Any]],
        policy_version: str | None,
        platform_pck_sha256: str | None,
        platform_json: dict[str, Any] | None,
        ima_state_json: str | None,
        ima_entries: int,
        ima_list_sha256: str | None,
        simulated: bool,
        platform_key: str | None = None,
        repin: bool = False,
    ) -> None:
        """Record a verdict on a registered host (a host row is never created here). Its platform is
        pinned by its first trusted quote; ``repin`` (an admin's request) replaces the pin."""
        t = format_time(at)
        if repin and platform_key:
            tx.execute(
                "UPDATE manager_hosts SET platform_key = ?, platform_pck_sha256 = ?, platform_json = ?,"
                " repin_requested_by = NULL, repin_requested_at = NULL WHERE name = ?",
                (platform_key, platform_pck_sha256, json.dumps(platform_json) if platform_json else None, name),
            )
        elif platform_key:
            tx.execute(
                "UPDATE manager_hosts SET platform_key = COALESCE(platform_key, ?) WHERE name = ?",
                (platform_key, name),
            )
        tx.execute(
            "UPDATE manager_hosts SET status = ?, last_attested_at = ?, last_contact_at = ?,"
            " last_trusted_at = CASE WHEN ? THEN ? ELSE last_trusted_at END,"
            " reasons_json = ?, policy_version = ?,"
            " platform_pck_sha256 = COALESCE(?, platform_pck_sha256), platform_json = COALESCE(?, platform_json),"
            " ima_state_json = CASE WHEN ? THEN ? ELSE ima_state_json END,"
            " ima_entries = CASE WHEN ? THEN ? ELSE ima_entries END,"
            " ima_list_sha256 = COALESCE(?, ima_list_sha256), simulated = ? WHERE name = ?",
            (
                "trusted" if trusted else "untrusted",
                t,
                t,
                trusted,
                t,
                json.dumps(reasons),
                policy_version,
                platform_pck_sha256,
                json.dumps(platform_json) if platform_json else None,
                trusted,
                ima_state_json,
                trusted,
                ima_entries,
                ima_list_sha256,
                int(simulated),
                name,
            ),
        )

    def mark_host_untrusted(self, tx: sqlite3.Connection, name: str, reasons: list[dict[str, Any]]) -> None:
        """The host is untrusted until attested again (revoked, or unreachable past the grace period)."""
        tx.execute(
            "UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?",
            (json.dumps(reasons, sort_keys=True), name),
        )

    # -- VNF registrations ----------------------------------------------------------------------
    def register_vnf(
        self,
        tx: sqlite3.Connection,
        host: str,
        vnf: str,
        *,
        enroll_rule: str,
        by: str,
        at: datetime,
        expected_mrenclave: str | None = None,
    ) -> None:
        """Register VNF ``vnf`` on ``host`` under ``enroll_rule`` (ConflictError if it exists)."""
        if tx.execute("SELECT 1 FROM manager_vnfs WHERE host = ? AND name = ?", (host, vnf)).fetchone():
            raise ConflictError(
                f"VNF {vnf!r} is already registered on host {host!r}",
                hint="`ftrust vm vnfs release HOST VNF` frees its enclave binding; `vnfs remove` unregisters it",
            )
        tx.execute(
            "INSERT INTO manager_vnfs (host, name, status, enroll_rule, registered_by, registered_at,"
            " expected_mrenclave) VALUES (?, ?, 'registered', ?, ?, ?, ?)",
            (host, vnf, enroll_rule, by, format_time(at), expected_mrenclave),
        )

    def vnf_registration(self, host: str, vnf: str, tx: sqlite3.Connection | None = None) -> VnfRegistration | None:
        sql = "SELECT * FROM manager_vnfs WHERE host = ? AND name = ?"
        rows = list(tx.execute(sql, (host, vnf))) if tx is not None else self.db.query(sql, (host, vnf))
        return VnfRegistration.from_row(rows[0]) if rows else None

    def name_bound_to_key(self, tx: sqlite3.Connection, key_sha256: str) -> tuple[str, str] | None:
        """The (host, VNF) whose name is bound to enclave key ``key_sha256``, if any."""
        row = tx.execute(
            "SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = ? ORDER BY host, name LIMIT 1",
            (key_sha256,),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def name_bound_to_key_now(self, key_sha256: str) -> tuple[str, str] | None:
        """:meth:`name_bound_to_key` outside a transaction (the judge's read; re-checked when recording)."""
        rows = self.db.query(
            "SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = ? ORDER BY host, name LIMIT 1",
            (key_sha256,),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def bind_vnf(
        self, tx: sqlite3.Connection, host: str, vnf: str, *, key_sha256: str, mrenclave: str, at: datetime
    ) -> bool:
        """Bind an unbound name to its first enclave; True if the name is (now) bound to exactly it."""
        tx.execute(
            "UPDATE manager_vnfs SET bound_public_key_sha256 = ?, bound_mrenclave = ?, bound_at = ?"
            " WHERE host = ? AND name = ? AND bound_public_key_sha256 IS NULL",
            (key_sha256, mrenclave, format_time(at), host, vnf),
        )
        row = tx.execute(
            "SELECT bound_public_key_sha256, bound_mrenclave FROM manager_vnfs WHERE host = ? AND name = ?", (host, vnf)
        ).fetchone()
        return bool(row) and row[0] == key_sha256 and row[1] == mrenclave

    def release_vnf(self, tx: sqlite3.Connection, host: str, vnf: str) -> None:
        """Free the name's enclave binding: its next enrollment binds it again."""
        tx.execute(
            "UPDATE manager_vnfs SET bound_public_key_sha256 = NULL, bound_mrenclave = NULL, bound_at = NULL"
            " WHERE host = ? AND name = ?",
            (host, vnf),
        )

    def remove_vnf(self, tx: sqlite3.Connection, host: str, vnf: str) -> None:
        tx.execute("DELETE FROM manager_vnfs WHERE host = ? AND name = ?", (host, vnf))

    # -- VNFs ------------------------------------------------------------------------------------
    def record_vnf(
        self,
        tx: sqlite3.Connection,
        host: str,
        vnf: str,
        *,
        status: str,
        at: datetime,
        mrenclave: str | None,
        public_key_sha256: str | None,
        reasons: list[dict[str, Any]],
    ) -> None:
        """Record the latest decision on a registered VNF (a row is never created here)."""
        tx.execute(
            "UPDATE manager_vnfs SET mrenclave = COALESCE(?, mrenclave), status = ?, last_attested_at = ?,"
            " public_key_sha256 = COALESCE(?, public_key_sha256), reasons_json = ? WHERE host = ? AND name = ?",
            (mrenclave, status, format_time(at), public_key_sha256, json.dumps(reasons), host, vnf),
        )

    def vnf_known(self, name: str, *, host: str | None = None) -> bool:
        """Whether ``name`` (on ``host`` if given) has a VNF row or an enrollment."""
        rows = self.db.query(
            "SELECT 1 FROM manager_vnfs WHERE name = ? AND (? IS NULL OR host = ?)"
            " UNION ALL SELECT 1 FROM manager_enrollments WHERE vnf = ? AND (? IS NULL OR host = ?) LIMIT 1",
            (name, host, host, name, host, host),
        )
        return bool(rows)

    def vnfs(self, host: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT v.*, (SELECT COUNT(*) FROM manager_enrollments e WHERE e.host = v.host AND e.vnf = v.name"
            " AND e.status = 'active') AS active FROM manager_vnfs v"
        )
        rows = self.db.query(
            sql + (" WHERE host = ?" if host else "") + " ORDER BY host, name", (host,) if host else ()
        )
        return [
            {
                "host": r["host"],
                "vnf": r["name"],
                "mrenclave": r["mrenclave"],
                "status": r["status"],
                "last_attested_at": r["last_attested_at"],
                "public_key_sha256": r["public_key_sha256"],
                "active_certificates": r["active"],
                "reasons": json.loads(r["reasons_json"]),
                "enroll_rule": r["enroll_rule"],
                "registered_by": r["registered_by"],
                "bound_public_key_sha256": r["bound_public_key_sha256"],
                "bound_mrenclave": r["bound_mrenclave"],
            }
            for r in rows
        ]

    # -- enrollments -----------------------------------------------------------------------------
    def record_enrollment(
        self,
        tx: sqlite3.Connection,
        *,
        host: str,
        vnf: str,
        serial: str,
        certificate_sha256: str,
        public_key_sha256: str,
        key_mode: str,
        mrenclave: str,
        policy_version: str | None,
        audit_id: int,
        issued_at: datetime,
        not_after: datetime,
        enclave_claims: dict[str, Any] | None = None,
        platform_key: str | None = None,
    ) -> int:
        """Record a new certificate of ``vnf`` on ``host``; an earlier active one is superseded (same tx)."""
        tx.execute(
            "UPDATE manager_enrollments SET status = 'superseded', superseded_at = ?, superseded_by = ?"
            " WHERE host = ? AND vnf = ? AND status = 'active'",
            (format_time(issued_at), serial, host, vnf),
        )
        cur = tx.execute(
            "INSERT INTO manager_enrollments (host, vnf, serial, certificate_sha256, public_key_sha256, key_mode,"
            " mrenclave, policy_version, audit_id, issued_at, not_after, enclave_claims_json, platform_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                host,
                vnf,
                serial,
                certificate_sha256,
                public_key_sha256,
                key_mode,
                mrenclave,
                policy_version,
                audit_id,
                format_time(issued_at),
                format_time(not_after),
                json.dumps(enclave_claims, sort_keys=True) if enclave_claims is not None else None,
                platform_key,
            ),
        )
        return int(cur.lastrowid or 0)

    _ENROLLMENTS_SQL = (
        "SELECT * FROM manager_enrollments WHERE (? IS NULL OR host = ?) AND (? IS NULL OR vnf = ?)"
        " AND (? = 0 OR status = 'active') ORDER BY id"
    )

    def enrollments(
        self, *, host: str | None = None, vnf: str | None = None, active_only: bool = False
    ) -> list[EnrollmentRecord]:
        rows = self.db.query(self._ENROLLMENTS_SQL, (host, host, vnf, vnf, int(active_only)))
        return [EnrollmentRecord.from_row(r) for r in rows]

    def live_enrollments_tx(
        self,
        tx: sqlite3.Connection,
        *,
        host: str | None,
        vnf: str | None,
        at: datetime,
        platform_key: str | None = None,
    ) -> list[EnrollmentRecord]:
        """Every certificate that still works: active ones and superseded ones not yet expired.

        A revocation must reach both: a renewed VNF still holds its previous certificate. With
        ``platform_key``, also every live certificate issued on that platform, under any host name.
        """
        rows = tx.execute(
            "SELECT * FROM manager_enrollments WHERE"
            " (((? IS NULL OR host = ?) AND (? IS NULL OR vnf = ?)) OR (? IS NOT NULL AND platform_key = ?))"
            " AND (status = 'active' OR (status = 'superseded' AND not_after > ?)) ORDER BY id",
            (host, host, vnf, vnf, platform_key, platform_key, format_time(at)),
        )
        return [EnrollmentRecord.from_row(r) for r in rows]

    def enrollments_by_serial_tx(self, tx: sqlite3.Connection, serial: str) -> list[EnrollmentRecord]:
        rows = tx.execute("SELECT * FROM manager_enrollments WHERE serial = ?", (serial,))
        return [EnrollmentRecord.from_row(r) for r in rows]

    def enclave_claims(self, serial: str) -> dict[str, Any] | None:
        """The verified enclave claims the certificate ``serial`` was issued on (JSON form)."""
        rows = self.db.query("SELECT enclave_claims_json FROM manager_enrollments WHERE serial = ?", (serial,))
        if not rows or rows[0][0] is None:
            return None
        value: dict[str, Any] = json.loads(rows[0][0])
        return value

    def mark_revoked(self, tx: sqlite3.Connection, serial: str, *, at: datetime, reason: str) -> None:
        tx.execute(
            "UPDATE manager_enrollments SET status = 'revoked', revoked_at = ?, revoke_reason = ? WHERE serial = ?",
            (format_time(at), reason, serial),
        )
