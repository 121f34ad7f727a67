"""Durable records of issued certificates and their revocations (SQLite through ``storage``).

Serials are 159-bit integers, stored as lowercase hex text (SQLite integers hold 64 bits). Every
write takes an optional ``tx`` so a caller (the Verification Manager) can issue a certificate and
record its enrollment in one transaction: a crash leaves both or neither.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from floodlight_trust.clock import format_time, parse_time
from floodlight_trust.errors import InputError
from floodlight_trust.storage import Database, Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "pki",
        1,
        """
        CREATE TABLE pki_certificates (
            serial TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            pem TEXT NOT NULL,
            revoked_at TEXT,
            revocation_reason TEXT
        );
        CREATE INDEX pki_certificates_revoked ON pki_certificates (revoked_at)
        """,
    ),
    # Issue 11: admin client certificates come from a CA of their own (never trusted by Floodlight),
    # whose records live apart, so the VNF CA's CRL never lists them and the admin API can require one.
    Migration(
        "pki-admin",
        1,
        """
        CREATE TABLE pki_admin_certificates (
            serial TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            pem TEXT NOT NULL,
            revoked_at TEXT,
            revocation_reason TEXT
        );
        CREATE INDEX pki_admin_certificates_revoked ON pki_admin_certificates (revoked_at)
        """,
    ),
)

VNF_TABLE = "pki_certificates"
ADMIN_TABLE = "pki_admin_certificates"

# RFC 5280 CRLReason values accepted for revocation, by their canonical (cryptography) names.
# removeFromCRL only exists in delta CRLs, which this CA does not publish.
REASONS: tuple[str, ...] = tuple(r.value for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl)

T = TypeVar("T")


def normalize_reason(reason: str) -> str:
    """``key-compromise``, ``key_compromise`` and ``keyCompromise`` all give ``keyCompromise``."""
    wanted = reason.replace("-", "").replace("_", "").lower()
    for name in REASONS:
        if name.lower() == wanted:
            return name
    raise InputError(f"unknown revocation reason {reason!r}", hint="one of: " + ", ".join(REASONS))


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """A serial as ``ftrust ca list`` prints it: hex, optionally with ``0x`` or colons."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise InputError(f"serial {text!r} is not a hexadecimal number", hint="copy it from `ftrust ca list`") from None
    if value <= 0:
        raise InputError(f"serial {text!r} must be positive")
    return value


@dataclass(frozen=True, slots=True)
class CertificateRecord:
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

    def status(self, at: datetime) -> str:
        """``revoked``, ``expired``, ``not-yet-valid`` or ``valid`` at ``at``."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if at > self.not_after:
            return "expired"
        if at < self.not_before:
            return "not-yet-valid"
        return "valid"

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))

    def to_json(self, at: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "serial": serial_hex(self.serial),
            "subject": self.subject,
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "issued_at": format_time(self.issued_at),
            "sha256": self.sha256,
            "revoked_at": format_time(self.revoked_at) if self.revoked_at else None,
            "revocation_reason": self.revocation_reason,
        }
        if at is not None:
            data["status"] = self.status(at)
        return data


def _row_to_record(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(
        serial=int(row["serial"], 16),
        subject=row["subject"],
        not_before=parse_time(row["not_before"]),
        not_after=parse_time(row["not_after"]),
        issued_at=parse_time(row["issued_at"]),
        sha256=row["sha256"],
        pem=row["pem"],
        revoked_at=parse_time(row["revoked_at"]) if row["revoked_at"] else None,
        revocation_reason=row["revocation_reason"],
    )


def _iso(value: datetime) -> str:
    # Microsecond precision keeps ordering exact; parse_time reads it back.
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CertificateRecords:
    """Issued certificates and revocations of one CA, in the deployment's :class:`Database`."""

    def __init__(self, db: Database, *, table: str = VNF_TABLE):
        """The records of the VNF CA (default) or, with ``table=ADMIN_TABLE``, of the admin CA."""
        if table not in (VNF_TABLE, ADMIN_TABLE):
            raise ValueError(f"no certificate table {table!r}")
        self.db = db
        self.table = table
        db.migrate(MIGRATIONS)

    def _sql(self, statement: str) -> str:
        # The table name comes from the closed set checked in __init__, never from input.
        return statement.replace(VNF_TABLE, self.table)

    def revocation_marker(self) -> tuple[int, str | None]:
        """How many certificates are revoked and the latest revocation time: changes with every
        revocation, whichever process made it (the CRL publisher re-signs when it does)."""
        row = self.db.query(
            self._sql("SELECT COUNT(*), MAX(revoked_at) FROM pki_certificates WHERE revoked_at IS NOT NULL")
        )[0]
        return int(row[0]), row[1]

    def _write(self, tx: sqlite3.Connection | None, fn: Callable[[sqlite3.Connection], T]) -> T:
        if tx is not None:
            return fn(tx)
        with self.db.transaction() as own:
            return fn(own)

    def record_issued(
        self, certificate: x509.Certificate, *, at: datetime, tx: sqlite3.Connection | None = None
    ) -> CertificateRecord:
        """Record ``certificate`` as issued at ``at``. A serial is recorded once; a repeat is refused."""
        record = CertificateRecord(
            serial=certificate.serial_number,
            subject=certificate.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            issued_at=at.astimezone(UTC),
            sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )

        def insert(c: sqlite3.Connection) -> CertificateRecord:
            try:
                c.execute(
                    self._sql(
                        "INSERT INTO pki_certificates"
                        " (serial, subject, not_before, not_after, issued_at, sha256, pem) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        serial_hex(record.serial),
                        record.subject,
                        _iso(record.not_before),
                        _iso(record.not_after),
                        _iso(record.issued_at),
                        record.sha256,
                        record.pem,
                    ),
                )
            except sqlite3.IntegrityError:
                raise InputError(f"certificate serial {serial_hex(record.serial)} is already recorded") from None
            return record

        return self._write(tx, insert)

    def revoke(self, serial: int, reason: str, at: datetime, tx: sqlite3.Connection | None = None) -> CertificateRecord:
        """Mark ``serial`` revoked at ``at`` for ``reason``. Revoking twice keeps the first revocation."""
        canonical = normalize_reason(reason)

        def update(c: sqlite3.Connection) -> CertificateRecord:
            select = self._sql("SELECT * FROM pki_certificates WHERE serial = ?")
            row = c.execute(select, (serial_hex(serial),)).fetchone()
            if row is None:
                raise InputError(f"no certificate with serial {serial_hex(serial)}", hint="see `ftrust ca list`")
            if row["revoked_at"] is None:
                c.execute(
                    self._sql("UPDATE pki_certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?"),
                    (_iso(at), canonical, serial_hex(serial)),
                )
                row = c.execute(select, (serial_hex(serial),)).fetchone()
            return _row_to_record(row)

        return self._write(tx, update)

    def get(self, serial: int) -> CertificateRecord | None:
        rows = self.db.query(self._sql("SELECT * FROM pki_certificates WHERE serial = ?"), (serial_hex(serial),))
        return _row_to_record(rows[0]) if rows else None

    def list(self, *, revoked: bool | None = None, subject: str | None = None) -> builtins.list[CertificateRecord]:
        """Every record (oldest first), optionally only revoked / unrevoked ones or one subject."""
        sql = self._sql("SELECT * FROM pki_certificates")
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
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY issued_at, serial"
        return [_row_to_record(r) for r in self.db.query(sql, params)]

    def revoked(self, *, unexpired_at: datetime | None = None) -> builtins.list[CertificateRecord]:
        """Revoked certificates; with ``unexpired_at``, only those still within their validity then."""
        records = self.list(revoked=True)
        if unexpired_at is not None:
            records = [r for r in records if r.not_after >= unexpired_at]
        return records
