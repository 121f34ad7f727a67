"""What each store call costs in statements, per engine, pinned.

The stores are written once (storage/sqlstores.py) over each engine's session; the engines keep the
statement shapes that differ (SQLite's one-statement reads and binds, PostgreSQL's advisory locks).
The statements per enrollment and per host-round are what docs/scaling.md and the benchmarks
(`python -m benchmarks vm`, `FTRUST_BENCH_FLEET=... python -m benchmarks fleet`) count: a change
that adds a round trip to one of these calls must say so here. Transaction control (BEGIN, COMMIT,
savepoints) is not counted; an advisory lock is (it is a round trip).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from floodlight_trust.errors import StorageUnavailable
from floodlight_trust.storage.records import HostAttestationRecord, NewEnrollment, NoncePurpose, NonceRecord
from floodlight_trust.storage.sqlite import SqliteStorage
from floodlight_trust.storage.stores import Storage, Transaction
from tests.storage.test_contract import certificate

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def statements(storage: Storage) -> Iterator[list[str]]:
    """Every statement the engine's driver runs for this thread while the block runs."""
    seen: list[str] = []
    if isinstance(storage, SqliteStorage):
        conn = storage.db._connect()  # this thread's connection: its reads and its durable writes
        conn.set_trace_callback(seen.append)
        try:
            yield seen
        finally:
            conn.set_trace_callback(None)
        return
    original = psycopg.Connection.execute
    caller = threading.get_ident()  # not the pool's workers (configuring a new connection meanwhile)

    def execute(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == caller:
            seen.append(query.decode() if isinstance(query, bytes) else str(query))
        return original(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Connection, "execute", execute)
        yield seen


def seed(storage: Storage) -> None:
    storage.hosts.add("h1", "https://h1:1", None, at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    assert storage.audit.record(at=AT, actor="t", action="seed", allowed=True) == 1  # for new_enrollment(1)


def new_enrollment(audit_id: int) -> NewEnrollment:
    return NewEnrollment(
        host="h1", vnf="fw", serial="0b", certificate_sha256="c" * 64, public_key_sha256="k" * 64,
        key_mode="enclave", mrenclave="m" * 64, policy_version="p1", audit_id=audit_id, issued_at=AT,
        not_after=AT + timedelta(hours=1), enclave_claims=None, platform_key="dcap-pck:aa",
    )  # fmt: skip


def enroll(tx: Transaction) -> None:
    """The storage calls of one enrollment's recording transaction (manager/enrollment.py, manager/nonces.py)."""
    tx.nonces.spend(SPENT)
    tx.enrollments.bind_enrolled("h1", "fw", public_key_sha256="k" * 64, mrenclave="m" * 64, at=AT)
    audit_id = tx.audit.record(at=AT, actor="h1", action="enroll", allowed=True, host="h1", vnf="fw")
    tx.certificates().record_issued(certificate(0x0B), at=AT)
    tx.enrollments.record_enrollment(new_enrollment(audit_id))


TRUSTED = HostAttestationRecord(trusted=True, at=AT, reasons=(), policy_version="p1", platform_key="dcap-pck:aa")
NONCE = NonceRecord("22" * 8, b"\x02" * 32, NoncePurpose.HOST, "h1", None, AT, AT + timedelta(60))
SPENT = NonceRecord("33" * 8, b"\x03" * 32, NoncePurpose.ENCLAVE, "h1", "fw", AT, AT + timedelta(60), AT)


def bind_enrolled(tx: Transaction) -> object:
    return tx.enrollments.bind_enrolled("h1", "fw", public_key_sha256="k", mrenclave="m", at=AT)


def bind_enrolled_registering(tx: Transaction) -> object:
    register = ("r", "rule")
    return tx.enrollments.bind_enrolled("h1", "ids", public_key_sha256="k2", mrenclave="m", at=AT, register=register)


# call -> (what it does in one open transaction, statements on SQLite, on PostgreSQL)
CALLS: dict[str, tuple[Callable[[Transaction], object], int, int]] = {
    "hosts.find_with_vnf": (lambda tx: tx.hosts.find_with_vnf("h1", "fw"), 1, 2),  # SQLite: one join
    "hosts.registered": (lambda tx: tx.hosts.registered("h1", "fw"), 1, 1),  # a nonce request's read
    # an enrollment's reads: find_with_vnf, nonces.find and bound_name in one statement
    "enrollment_reads": (lambda tx: tx.enrollment_reads("h1", "fw", nonce_selector="33" * 8, public_key_sha256="k"), 1, 1),
    "hosts.platform_owner": (lambda tx: tx.hosts.platform_owner("dcap-pck:aa", other_than="h1"), 1, 2),  # + lock
    "hosts.record_attestation": (lambda tx: tx.hosts.record_attestation("h1", TRUSTED), 1, 2),  # + lock
    "hosts.add": (lambda tx: tx.hosts.add("h2", None, None, at=AT), 1, 1),
    "nonces.spend": (lambda tx: tx.nonces.spend(SPENT), 1, 1),
    "nonces.spend purging": (lambda tx: tx.nonces.spend(SPENT, purge_expired_before=AT), 2, 2),
    "enrollments.bind": (lambda tx: tx.enrollments.bind("h1", "fw", public_key_sha256="k", mrenclave="m", at=AT), 1, 2),
    # SQLite: one upsert; PostgreSQL: bind (lock + update) and record_vnf, after register_vnf
    "enrollments.bind_enrolled": (bind_enrolled, 1, 3),
    "enrollments.bind_enrolled registering": (bind_enrolled_registering, 1, 4),
    "audit.record": (lambda tx: tx.audit.record(at=AT, actor="t", action="enroll", allowed=True), 1, 1),
    "certificates.record_issued": (lambda tx: tx.certificates().record_issued(certificate(0x0C), at=AT), 1, 1),
    "enrollments.record_enrollment": (lambda tx: tx.enrollments.record_enrollment(new_enrollment(1)), 2, 3),
    "one enrollment": (enroll, 6, 9),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_statements_per_store_call(storage: Storage, call: str) -> None:
    fn, on_sqlite, on_postgres = CALLS[call]
    seed(storage)
    with storage.transaction() as tx, statements(storage) as seen:
        fn(tx)
    counted = [s for s in seen if not s.lstrip().upper().startswith(CONTROL)]
    expected = on_sqlite if isinstance(storage, SqliteStorage) else on_postgres
    assert len(counted) == expected, counted


def test_a_nonce_request_s_storage_check_runs_no_statement_on_sqlite(storage: Storage, tmp_path: Path) -> None:
    """SQLite's check is the thread's connection and the file it opened (a SELECT 1 reads no page of
    it: it proved nothing more); PostgreSQL's is one round trip within the health timeout."""
    with statements(storage) as seen:
        storage.check()
    assert len(seen) == (0 if isinstance(storage, SqliteStorage) else 1), seen
    if isinstance(storage, SqliteStorage):
        storage.path.rename(tmp_path / "moved.sqlite3")
        try:
            with pytest.raises(StorageUnavailable, match="is gone"):
                storage.check()
        finally:
            (tmp_path / "moved.sqlite3").rename(storage.path)
        storage.check()
