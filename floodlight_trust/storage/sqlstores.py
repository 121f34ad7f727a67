"""The stores of storage/stores.py, written once for every SQL engine.

An engine module supplies a :class:`Session` (where statements run: in an open transaction, or each
on its own) with its :class:`~floodlight_trust.storage.dialect.Dialect`; the store classes here hold
every statement (shared text, spelled for the engine by ``Dialect.sql``) and turn rows into records
(storage/rows.py). An engine subclasses a store only where the shape of its statements really
differs (SQLite reads a host with its VNF in one join and binds-and-records an enrollment in one
upsert; PostgreSQL keeps those as steps under its locks).

Races (the "Race:" notes of storage/stores.py) are decided by the statements here (conditional
updates, primary keys, ``ON CONFLICT``) and, where a read guards a write to another row, by
:meth:`Session.lock`: a transaction-scoped advisory lock on PostgreSQL, nothing on SQLite (its
``BEGIN IMMEDIATE`` already runs one writer at a time).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from floodlight_trust.errors import ConflictError, InputError, NotFoundError
from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage import rows
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.records import (
    AuditRecord,
    CertificateAuthorityKind,
    CertificateRecord,
    EnrollmentReads,
    EnrollmentRecord,
    HostAttestationRecord,
    HostRecord,
    HostStatus,
    NewEnrollment,
    NonceRecord,
    TpmPin,
    VnfRecord,
    VnfRegistration,
    VnfStatus,
    normalize_reason,
)
from floodlight_trust.storage.rows import Row

Params = Sequence[object] | Mapping[str, object]

# json.dumps(value, sort_keys=True), with its encoder made once (json.dumps makes one per call
# when given any option): the same text.
_sorted_json = json.JSONEncoder(sort_keys=True).encode


class Session(Protocol):
    """Where a store's statements run (one per engine): inside one open transaction, or, for the
    autocommit stores (``storage.hosts``...), each read alone and each write in a transaction of its own."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def in_transaction(self) -> bool: ...

    def one(self, query: str, params: Params = ()) -> Row | None:
        """The first row of a read."""
        ...

    def all(self, query: str, params: Params = ()) -> Sequence[Row]: ...

    def run(self, query: str, params: Params = ()) -> int:
        """A write; how many rows it changed."""
        ...

    def write_one(self, query: str, params: Params = ()) -> Row | None:
        """A write's first returned row (``RETURNING``)."""
        ...

    def transaction(self) -> AbstractContextManager[Session]:
        """A session in a transaction, for several statements: this one when it is in one, else a
        new transaction committed when the block exits normally."""
        ...

    def lock(self, what: str, *key: str) -> None:
        """In a transaction: hold a lock on ``what``/``key`` until it ends, so that a read guarding a
        write to another row waits for a concurrent writer's commit (a no-op where the engine runs
        one writer at a time, and outside a transaction)."""
        ...

    def is_duplicate_key(self, error: Exception) -> bool:
        """Whether ``error`` is the driver's unique or primary key violation."""
        ...


class SqlHosts:
    """:class:`~floodlight_trust.storage.stores.HostStore` on ``manager_hosts``."""

    __slots__ = ("_d", "_s")

    def __init__(self, session: Session):
        self._s = session
        self._d = session.dialect

    _ADD = (
        "INSERT INTO manager_hosts (name, agent_url, host_policy, created_at, agent_tls_pem) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) "
    )
    # One statement decides between two admins adding one name at once (no row: it was there).
    _ADD_NEW = _ADD + "DO NOTHING RETURNING *"
    _ADD_OR_REPLACE = _ADD + (
        "DO UPDATE SET agent_url = excluded.agent_url,"
        " host_policy = COALESCE(excluded.host_policy, manager_hosts.host_policy),"
        " agent_tls_pem = COALESCE(excluded.agent_tls_pem, manager_hosts.agent_tls_pem) RETURNING *"
    )

    def add(
        self,
        name: str,
        agent_url: str | None,
        host_policy: str | None,
        *,
        at: datetime,
        agent_tls_pem: str | None = None,
        replace: bool = False,
    ) -> HostRecord:
        row = self._s.write_one(
            self._d.sql(self._ADD_OR_REPLACE if replace else self._ADD_NEW),
            (name, agent_url, host_policy, self._d.to_seconds(at), agent_tls_pem),
        )
        if row is None:
            raise ConflictError(
                f"host {name!r} is already registered",
                hint="`ftrust vm hosts add NAME --replace ...` changes its agent URL; "
                "`ftrust vm hosts remove NAME` removes it",
            )
        return rows.host_record(row, self._d)

    def remove(self, name: str) -> None:
        with self._s.transaction() as tx:
            tx.run(self._d.sql("DELETE FROM manager_vnfs WHERE host = ?"), (name,))
            tx.run(self._d.sql("DELETE FROM manager_hosts WHERE name = ?"), (name,))

    def find(self, name: str) -> HostRecord | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_hosts WHERE name = ?"), (name,))
        return rows.host_record(row, self._d) if row else None

    def find_with_vnf(self, name: str, vnf: str) -> tuple[HostRecord | None, VnfRegistration | None]:
        host = self.find(name)
        if host is None:
            return None, None
        row = self._s.one(self._d.sql("SELECT * FROM manager_vnfs WHERE host = ? AND name = ?"), (name, vnf))
        return host, rows.vnf_registration(row, self._d) if row else None

    # No row: no such host; else whether the VNF is registered on it (a NULL VNF matches nothing).
    _REGISTERED = (
        "SELECT EXISTS (SELECT 1 FROM manager_vnfs WHERE host = ? AND name = {text}) AS vnf"
        " FROM manager_hosts WHERE name = ?"
    )

    def registered(self, name: str, vnf: str | None = None) -> tuple[bool, bool]:
        row = self._s.one(self._d.sql(self._REGISTERED), (name, vnf, name))
        return (False, False) if row is None else (True, bool(row["vnf"]))

    def get(self, name: str) -> HostRecord:
        found = self.find(name)
        if found is None:
            raise NotFoundError(
                f"unknown host {name!r}: not registered", hint="register it with `ftrust vm hosts add NAME --agent URL`"
            )
        return found

    def all(self) -> builtins.list[HostRecord]:
        return [rows.host_record(r, self._d) for r in self._s.all(self._d.sql("SELECT * FROM manager_hosts ORDER BY name"))]

    def platform_owner(self, platform_key: str, *, other_than: str) -> str | None:
        self._s.lock("platform", platform_key)  # the pin this read guards is another host's row
        row = self._s.one(
            self._d.sql("SELECT name FROM manager_hosts WHERE platform_key = ? AND name <> ? ORDER BY name LIMIT 1"),
            (platform_key, other_than),
        )
        return str(row["name"]) if row else None

    def platform_of(self, name: str) -> str | None:
        row = self._s.one(self._d.sql("SELECT platform_key FROM manager_hosts WHERE name = ?"), (name,))
        return str(row["platform_key"]) if row and row["platform_key"] else None

    def request_repin(self, name: str, *, by: str, at: datetime) -> None:
        self._s.run(
            self._d.sql("UPDATE manager_hosts SET repin_requested_by = ?, repin_requested_at = ? WHERE name = ?"),
            (by, self._d.to_seconds(at), name),
        )

    # One statement: the platform is pinned when none is (or the pin replaced on an admin's re-pin request).
    _RECORD = (
        "UPDATE manager_hosts SET status = ?, last_attested_at = ?, last_contact_at = ?,"
        " last_trusted_at = CASE WHEN ? THEN ? ELSE last_trusted_at END,"
        " reasons_json = ?, policy_version = ?,"
        " ima_state_json = CASE WHEN ? THEN ? ELSE ima_state_json END,"
        " ima_entries = CASE WHEN ? THEN ? ELSE ima_entries END,"
        " ima_list_sha256 = COALESCE(?, ima_list_sha256), simulated = ?,"
    )
    _RECORD_REPIN = _RECORD + (
        " platform_key = ?, platform_pck_sha256 = ?, platform_json = ?,"
        " repin_requested_by = NULL, repin_requested_at = NULL WHERE name = ?"
    )
    _RECORD_KEEP_PIN = _RECORD + (
        " platform_key = COALESCE(platform_key, ?),"
        " platform_pck_sha256 = COALESCE(?, platform_pck_sha256),"
        " platform_json = COALESCE(?, platform_json) WHERE name = ?"
    )

    def record_attestation(self, name: str, verdict: HostAttestationRecord) -> None:
        v = verdict
        t = self._d.to_seconds(v.at)
        query = self._RECORD_REPIN if v.repin and v.platform_key else self._RECORD_KEEP_PIN
        params = (
            str(HostStatus.TRUSTED if v.trusted else HostStatus.UNTRUSTED),
            t,
            t,
            v.trusted,
            t,
            json.dumps(list(v.reasons)),
            v.policy_version,
            v.trusted,
            v.ima_state_json,
            v.trusted,
            v.ima_entries,
            v.ima_list_sha256,
            v.simulated,
            v.platform_key,
            v.platform_pck_sha256,
            json.dumps(v.platform) if v.platform else None,
            name,
        )
        with self._s.transaction() as tx:
            if v.platform_key:
                tx.lock("platform", v.platform_key)
            tx.run(self._d.sql(query), params)

    def mark_untrusted(self, name: str, reasons: Sequence[dict[str, Any]]) -> None:
        self._s.run(
            self._d.sql("UPDATE manager_hosts SET status = 'untrusted', reasons_json = ? WHERE name = ?"),
            (_sorted_json(list(reasons)), name),
        )


class SqlEnrollments:
    """:class:`~floodlight_trust.storage.stores.EnrollmentStore` on ``manager_vnfs`` and ``manager_enrollments``."""

    __slots__ = ("_d", "_s")

    def __init__(self, session: Session):
        self._s = session
        self._d = session.dialect

    def register_vnf(
        self,
        host: str,
        vnf: str,
        *,
        enroll_rule: str,
        by: str,
        at: datetime,
        expected_mrenclave: str | None = None,
        if_absent: bool = False,
    ) -> bool:
        inserted = self._s.run(
            self._d.sql(
                "INSERT INTO manager_vnfs (host, name, status, enroll_rule, registered_by, registered_at,"
                " expected_mrenclave) VALUES (?, ?, 'registered', ?, ?, ?, ?) ON CONFLICT (host, name) DO NOTHING"
            ),
            (host, vnf, enroll_rule, by, self._d.to_seconds(at), expected_mrenclave),
        )
        if inserted == 1:
            return True
        if not if_absent:
            raise ConflictError(
                f"VNF {vnf!r} is already registered on host {host!r}",
                hint="`ftrust vm vnfs release HOST VNF` frees its enclave binding; `vnfs remove` unregisters it",
            )
        return False

    def registration(self, host: str, vnf: str) -> VnfRegistration | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_vnfs WHERE host = ? AND name = ?"), (host, vnf))
        return rows.vnf_registration(row, self._d) if row else None

    def bound_name(self, public_key_sha256: str) -> tuple[str, str] | None:
        self._s.lock("enclave-key", public_key_sha256)  # a key binds one name: the bind it guards is another row's
        row = self._s.one(
            self._d.sql(
                "SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = ? ORDER BY host, name LIMIT 1"
            ),
            (public_key_sha256,),
        )
        return (str(row["host"]), str(row["name"])) if row else None

    # One statement: bind while unbound and while no other name holds the key, and read back what the
    # name is bound to. A concurrent bind of the same row waits for its row lock and then keeps the
    # first binding (COALESCE on the committed row); a concurrent bind of the same key to another name
    # waits for the key's lock and then sees that binding (NOT EXISTS).
    _BIND = (
        "UPDATE manager_vnfs SET"
        " bound_at = CASE WHEN bound_public_key_sha256 IS NULL THEN ? ELSE bound_at END,"
        " bound_mrenclave = CASE WHEN bound_public_key_sha256 IS NULL THEN ? ELSE bound_mrenclave END,"
        " bound_public_key_sha256 = COALESCE(bound_public_key_sha256, ?)"
        " WHERE host = ? AND name = ? AND NOT EXISTS (SELECT 1 FROM manager_vnfs o"
        " WHERE o.bound_public_key_sha256 = ? AND (o.host <> ? OR o.name <> ?))"
        " RETURNING bound_public_key_sha256, bound_mrenclave"
    )

    @staticmethod
    def bound_to(row: Row | None, public_key_sha256: str, mrenclave: str) -> bool:
        """Whether a bind's returned row says the name is bound to exactly this enclave."""
        return (
            row is not None
            and row["bound_public_key_sha256"] == public_key_sha256
            and row["bound_mrenclave"] == mrenclave
        )

    def bind(self, host: str, vnf: str, *, public_key_sha256: str, mrenclave: str, at: datetime) -> bool:
        with self._s.transaction() as tx:
            tx.lock("enclave-key", public_key_sha256)
            row = tx.write_one(
                self._d.sql(self._BIND),
                (self._d.to_seconds(at), mrenclave, public_key_sha256, host, vnf, public_key_sha256, host, vnf),
            )
        return self.bound_to(row, public_key_sha256, mrenclave)

    def bind_enrolled(
        self,
        host: str,
        vnf: str,
        *,
        public_key_sha256: str,
        mrenclave: str,
        at: datetime,
        register: tuple[str, str] | None = None,
    ) -> bool:
        # The three steps as they are, each with its lock (an engine may do them in one statement).
        if register is not None:
            self.register_vnf(host, vnf, enroll_rule=register[0], by=register[1], at=at, if_absent=True)
        if not self.bind(host, vnf, public_key_sha256=public_key_sha256, mrenclave=mrenclave, at=at):
            return False
        self.record_vnf(
            host, vnf, status=VnfStatus.ENROLLED, at=at, mrenclave=mrenclave, public_key_sha256=public_key_sha256,
            reasons=[],
        )  # fmt: skip
        return True

    def release(self, host: str, vnf: str) -> None:
        self._s.run(
            self._d.sql(
                "UPDATE manager_vnfs SET bound_public_key_sha256 = NULL, bound_mrenclave = NULL, bound_at = NULL"
                " WHERE host = ? AND name = ?"
            ),
            (host, vnf),
        )

    def remove_vnf(self, host: str, vnf: str) -> None:
        self._s.run(self._d.sql("DELETE FROM manager_vnfs WHERE host = ? AND name = ?"), (host, vnf))

    def record_vnf(
        self,
        host: str,
        vnf: str,
        *,
        status: VnfStatus,
        at: datetime,
        mrenclave: str | None,
        public_key_sha256: str | None,
        reasons: Sequence[dict[str, Any]],
    ) -> None:
        self._s.run(
            self._d.sql(
                "UPDATE manager_vnfs SET mrenclave = COALESCE(?, mrenclave), status = ?, last_attested_at = ?,"
                " public_key_sha256 = COALESCE(?, public_key_sha256), reasons_json = ? WHERE host = ? AND name = ?"
            ),
            (mrenclave, str(status), self._d.to_seconds(at), public_key_sha256, json.dumps(list(reasons)), host, vnf),
        )

    def vnf_known(self, vnf: str, *, host: str | None = None) -> bool:
        row = self._s.one(
            self._d.sql(
                "SELECT 1 AS known FROM manager_vnfs WHERE name = ? AND ({text} IS NULL OR host = ?)"
                " UNION ALL SELECT 1 FROM manager_enrollments WHERE vnf = ? AND ({text} IS NULL OR host = ?) LIMIT 1"
            ),
            (vnf, host, host, vnf, host, host),
        )
        return row is not None

    _VNFS = (
        "SELECT v.*, (SELECT COUNT(*) FROM manager_enrollments e WHERE e.host = v.host AND e.vnf = v.name"
        " AND e.status = 'active') AS active FROM manager_vnfs v"
    )

    def vnfs(self, host: str | None = None) -> builtins.list[VnfRecord]:
        if host:
            found = self._s.all(self._d.sql(self._VNFS + " WHERE host = ? ORDER BY host, name"), (host,))
        else:
            found = self._s.all(self._d.sql(self._VNFS + " ORDER BY host, name"))
        return [rows.vnf_record(r, self._d) for r in found]

    _ENROLL = (
        "INSERT INTO manager_enrollments (host, vnf, serial, certificate_sha256, public_key_sha256, key_mode,"
        " mrenclave, policy_version, audit_id, issued_at, not_after, enclave_claims_json, platform_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
    )

    def record_enrollment(self, enrollment: NewEnrollment) -> int:
        e = enrollment
        with self._s.transaction() as tx:
            # One active certificate per VNF: the second of two concurrent enrollments waits here, and
            # its UPDATE (a new snapshot at READ COMMITTED) then supersedes the first one's certificate.
            tx.lock("enrollment", e.host, e.vnf)
            tx.run(
                self._d.sql(
                    "UPDATE manager_enrollments SET status = 'superseded', superseded_at = ?, superseded_by = ?"
                    " WHERE host = ? AND vnf = ? AND status = 'active'"
                ),
                (self._d.to_seconds(e.issued_at), e.serial, e.host, e.vnf),
            )
            try:
                row = tx.write_one(
                    self._d.sql(self._ENROLL),
                    (
                        e.host,
                        e.vnf,
                        e.serial,
                        e.certificate_sha256,
                        e.public_key_sha256,
                        e.key_mode,
                        e.mrenclave,
                        e.policy_version,
                        e.audit_id,
                        self._d.to_seconds(e.issued_at),
                        self._d.to_seconds(e.not_after),
                        _sorted_json(e.enclave_claims) if e.enclave_claims is not None else None,
                        e.platform_key,
                    ),
                )
            except Exception as error:
                if tx.is_duplicate_key(error):
                    raise InputError(f"an enrollment with certificate serial {e.serial} is already recorded") from None
                raise
            assert row is not None
            return int(row["id"])

    def enrollments(
        self, *, host: str | None = None, vnf: str | None = None, active_only: bool = False
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.all(
            self._d.sql(
                "SELECT * FROM manager_enrollments WHERE ({text} IS NULL OR host = ?) AND ({text} IS NULL OR vnf = ?)"
                " AND (NOT ? OR status = 'active') ORDER BY id"
            ),
            (host, host, vnf, vnf, active_only),
        )
        return [rows.enrollment_record(r, self._d) for r in found]

    def live(
        self, *, host: str | None, vnf: str | None, at: datetime, platform_key: str | None = None
    ) -> builtins.list[EnrollmentRecord]:
        found = self._s.all(
            self._d.sql(
                "SELECT * FROM manager_enrollments WHERE"
                " ((({text} IS NULL OR host = ?) AND ({text} IS NULL OR vnf = ?))"
                " OR ({text} IS NOT NULL AND platform_key = ?))"
                " AND (status = 'active' OR (status = 'superseded' AND not_after > ?)) ORDER BY id"
            ),
            (host, host, vnf, vnf, platform_key, platform_key, self._d.to_seconds(at)),
        )
        return [rows.enrollment_record(r, self._d) for r in found]

    def by_serial(self, serial: str) -> EnrollmentRecord | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_enrollments WHERE serial = ?"), (serial,))
        return rows.enrollment_record(row, self._d) if row else None

    def enclave_claims(self, serial: str) -> dict[str, Any] | None:
        row = self._s.one(self._d.sql("SELECT enclave_claims_json FROM manager_enrollments WHERE serial = ?"), (serial,))
        if not row or row["enclave_claims_json"] is None:
            return None
        value: dict[str, Any] = json.loads(row["enclave_claims_json"])
        return value

    def mark_revoked(self, serial: str, *, at: datetime, reason: str) -> None:
        self._s.run(
            self._d.sql(
                "UPDATE manager_enrollments SET status = 'revoked', revoked_at = ?, revoke_reason = ? WHERE serial = ?"
            ),
            (self._d.to_seconds(at), reason, serial),
        )


_CERTIFICATE_TABLES = {
    CertificateAuthorityKind.VNF: "pki_certificates",
    CertificateAuthorityKind.ADMIN: "pki_admin_certificates",
}


class SqlCertificates:
    """:class:`~floodlight_trust.storage.stores.CertificateStore` on one CA's table."""

    __slots__ = ("_d", "_kind", "_s", "_table")

    def __init__(self, session: Session, kind: CertificateAuthorityKind):
        self._s = session
        self._d = session.dialect
        self._kind = CertificateAuthorityKind(kind)
        self._table = _CERTIFICATE_TABLES[self._kind]  # from the closed set, never from input

    def _sql(self, statement: str) -> str:
        return self._d.sql(statement.replace("{table}", self._table))

    @property
    def kind(self) -> CertificateAuthorityKind:
        return self._kind

    def record_issued(self, certificate: x509.Certificate, *, at: datetime) -> CertificateRecord:
        record = CertificateRecord(
            serial=certificate.serial_number,
            subject=certificate.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            issued_at=at.astimezone(UTC),
            sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )
        return self.record(record)

    def record(self, record: CertificateRecord) -> CertificateRecord:
        inserted = self._s.run(
            self._sql(
                "INSERT INTO {table} (serial, subject, not_before, not_after, issued_at, sha256, pem)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING"
            ),
            (
                format(record.serial, "x"),
                record.subject,
                self._d.to_exact(record.not_before),
                self._d.to_exact(record.not_after),
                self._d.to_exact(record.issued_at),
                record.sha256,
                record.pem,
            ),
        )
        if inserted != 1:  # serials are unique by construction: the primary key, across replicas
            raise InputError(f"certificate serial {format(record.serial, 'x')} is already recorded")
        return record

    def revoke(self, serial: int, reason: str, at: datetime) -> CertificateRecord:
        canonical = normalize_reason(reason)
        hexserial = format(serial, "x")
        with self._s.transaction() as tx:
            # One statement when it revokes; the first revocation stands (then it is read back).
            row = tx.write_one(
                self._sql(
                    "UPDATE {table} SET revoked_at = ?, revocation_reason = ? WHERE serial = ? AND revoked_at IS NULL"
                    " RETURNING *"
                ),
                (self._d.to_exact(at), canonical, hexserial),
            )
            if row is None:
                row = tx.one(self._sql("SELECT * FROM {table} WHERE serial = ?"), (hexserial,))
            if row is None:
                raise InputError(f"no certificate with serial {hexserial}", hint="see `ftrust ca list`")
            return rows.certificate_record(row, self._d)

    def get(self, serial: int) -> CertificateRecord | None:
        row = self._s.one(self._sql("SELECT * FROM {table} WHERE serial = ?"), (format(serial, "x"),))
        return rows.certificate_record(row, self._d) if row else None

    def list(self, *, revoked: bool | None = None, subject: str | None = None) -> builtins.list[CertificateRecord]:
        query = "SELECT * FROM {table}"
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if revoked is True:
            where.append("revoked_at IS NOT NULL")
        elif revoked is False:
            where.append("revoked_at IS NULL")
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY issued_at, serial"
        return [rows.certificate_record(r, self._d) for r in self._s.all(self._sql(query), params)]

    def revoked(self, *, unexpired_at: datetime | None = None) -> builtins.list[CertificateRecord]:
        records = self.list(revoked=True)
        if unexpired_at is not None:
            records = [r for r in records if r.not_after >= unexpired_at]
        return records

    def revocation_marker(self) -> tuple[int, datetime | None]:
        row = self._s.one(
            self._sql("SELECT COUNT(*) AS n, MAX(revoked_at) AS latest FROM {table} WHERE revoked_at IS NOT NULL")
        )
        assert row is not None
        return int(row["n"]), self._d.time_or_none(row["latest"])


class SqlNonces:
    """:class:`~floodlight_trust.storage.stores.NonceStore` on ``manager_nonces``."""

    __slots__ = ("_d", "_s")

    def __init__(self, session: Session):
        self._s = session
        self._d = session.dialect

    def find(self, selector: str) -> NonceRecord | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_nonces WHERE selector = ?"), (selector,))
        return rows.nonce_record(row, self._d) if row else None

    def spend(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> bool:
        n, d = nonce, self._d
        assert n.used_at is not None
        with self._s.transaction() as tx:
            if purge_expired_before is not None:
                tx.run(d.sql("DELETE FROM manager_nonces WHERE expires_at < ?"), (d.to_instant(purge_expired_before),))
            # One insert keyed by the selector: of two replicas spending one nonce, the second waits for
            # the first's uncommitted row, then inserts nothing (or inserts, if the first rolled back).
            spent = tx.run(
                d.sql(
                    "INSERT INTO manager_nonces (selector, verifier, purpose, host, vnf, issued_at, expires_at, used_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (selector) DO NOTHING"
                ),
                (n.selector, n.verifier, str(n.purpose), n.host, n.vnf, d.to_instant(n.issued_at),
                 d.to_instant(n.expires_at), d.to_instant(n.used_at)),
            )  # fmt: skip
        return spent == 1

    def purge(self, *, expired_before: datetime) -> int:
        return self._s.run(
            self._d.sql("DELETE FROM manager_nonces WHERE expires_at < ?"), (self._d.to_instant(expired_before),)
        )


class SqlAudit:
    """:class:`~floodlight_trust.storage.stores.AuditLog` on ``manager_audit``."""

    __slots__ = ("_d", "_s")

    def __init__(self, session: Session):
        self._s = session
        self._d = session.dialect

    _RECORD = (
        "INSERT INTO manager_audit (at, at_ts, actor, action, host, vnf, allowed, policy_version, simulated,"
        " evidence_json, reasons_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
    )

    def record(
        self,
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
        reasons: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        d = self._d
        row = self._s.write_one(
            d.sql(self._RECORD),
            (d.to_seconds(at), d.to_instant(at), actor, action, host, vnf, allowed, policy_version, simulated,
             _sorted_json(evidence or {}), json.dumps(list(reasons or []))),
        )  # fmt: skip
        assert row is not None
        return int(row["id"])

    def records(self, *, since: datetime | None = None, limit: int = 1000) -> builtins.list[AuditRecord]:
        if since is None:
            found = self._s.all(self._d.sql("SELECT * FROM manager_audit ORDER BY id DESC LIMIT ?"), (limit,))
        else:
            found = self._s.all(
                self._d.sql("SELECT * FROM manager_audit WHERE at_ts >= ? ORDER BY id DESC LIMIT ?"),
                (self._d.to_instant(since), limit),
            )
        return [rows.audit_record(r, self._d) for r in reversed(found)]

    def get(self, audit_id: int) -> AuditRecord | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_audit WHERE id = ?"), (audit_id,))
        return rows.audit_record(row, self._d) if row else None


class SqlTpm:
    """:class:`~floodlight_trust.storage.stores.TpmStore` on ``manager_host_tpm``."""

    __slots__ = ("_d", "_s")

    def __init__(self, session: Session):
        self._s = session
        self._d = session.dialect

    def get(self, host: str) -> TpmPin | None:
        row = self._s.one(self._d.sql("SELECT * FROM manager_host_tpm WHERE host = ?"), (host,))
        return rows.tpm_pin(row, self._d) if row else None

    def pin(
        self,
        host: str,
        *,
        ak_public: bytes,
        ak_name: str,
        ak_spki_sha256: str,
        ek_spki_sha256: str,
        ek_trust: str,
        at: datetime,
    ) -> None:
        self._s.run(
            self._d.sql(
                "INSERT INTO manager_host_tpm (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust,"
                " registered_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                " ak_public = excluded.ak_public, ak_name = excluded.ak_name, ak_spki_sha256 = excluded.ak_spki_sha256,"
                " ek_spki_sha256 = excluded.ek_spki_sha256, ek_trust = excluded.ek_trust,"
                " registered_at = excluded.registered_at, last_clock_json = NULL, boot_pcrs_json = NULL"
            ),
            (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust, self._d.to_exact(at)),
        )

    def record_round(self, host: str, *, clock: ClockInfo, firmware: int, boot_pcrs: dict[str, dict[int, str]]) -> None:
        last_clock, boot = rows.tpm_round_json(clock, firmware, boot_pcrs)
        self._s.run(
            self._d.sql(
                "UPDATE manager_host_tpm SET last_clock_json = ?, boot_pcrs_json = COALESCE(boot_pcrs_json, ?)"
                " WHERE host = ?"
            ),
            (last_clock, boot, host),
        )


class SqlTransaction:
    """The stores of one session (:class:`~floodlight_trust.storage.stores.Transaction`); an engine
    names its store subclasses in ``HOSTS`` / ``ENROLLMENTS``."""

    __slots__ = ("_session", "audit", "enrollments", "hosts", "nonces", "tpm")

    HOSTS: ClassVar[type[SqlHosts]] = SqlHosts
    ENROLLMENTS: ClassVar[type[SqlEnrollments]] = SqlEnrollments

    def __init__(self, session: Session):
        self._session = session
        self.hosts = self.HOSTS(session)
        self.enrollments = self.ENROLLMENTS(session)
        self.nonces = SqlNonces(session)
        self.audit = SqlAudit(session)
        self.tpm = SqlTpm(session)

    def certificates(self, kind: CertificateAuthorityKind = CertificateAuthorityKind.VNF) -> SqlCertificates:
        return SqlCertificates(self._session, kind)

    # The reads of SqlHosts.find_with_vnf, SqlNonces.find and SqlEnrollments.bound_name as one
    # statement (the columns rows.vnf_registration and rows.nonce_record read, prefixed v_ and n_):
    # one round trip, and on SQLite one read transaction, instead of four or three.
    _ENROLLMENT_READS = (
        "SELECT h.*, v.host AS v_host, v.name AS v_name, v.enroll_rule AS v_enroll_rule,"
        " v.registered_by AS v_registered_by, v.expected_mrenclave AS v_expected_mrenclave,"
        " v.bound_public_key_sha256 AS v_bound_public_key_sha256, v.bound_mrenclave AS v_bound_mrenclave,"
        " v.bound_at AS v_bound_at, n.selector AS n_selector, n.verifier AS n_verifier, n.purpose AS n_purpose,"
        " n.host AS n_host, n.vnf AS n_vnf, n.issued_at AS n_issued_at, n.expires_at AS n_expires_at,"
        " n.used_at AS n_used_at, k.host AS k_host, k.name AS k_name"
        " FROM manager_hosts h LEFT JOIN manager_vnfs v ON v.host = h.name AND v.name = ?"
        " LEFT JOIN manager_nonces n ON n.selector = ?"
        " LEFT JOIN (SELECT host, name FROM manager_vnfs WHERE bound_public_key_sha256 = ? ORDER BY host, name LIMIT 1)"
        " k ON TRUE WHERE h.name = ?"
    )

    def enrollment_reads(self, host: str, vnf: str, *, nonce_selector: str, public_key_sha256: str) -> EnrollmentReads:
        d = self._session.dialect
        found = self._session.one(d.sql(self._ENROLLMENT_READS), (vnf, nonce_selector, public_key_sha256, host))
        if found is None:
            return EnrollmentReads(None)
        row = rows.by_name(found)  # (four records from one row of 45 columns)
        return EnrollmentReads(
            rows.host_record(row, d),
            rows.vnf_registration(row, d, "v_") if row["v_name"] is not None else None,
            rows.nonce_record(row, d, "n_") if row["n_selector"] is not None else None,
            (str(row["k_host"]), str(row["k_name"])) if row["k_name"] is not None else None,
        )

