"""The PostgreSQL engine beyond the contract: replicas racing on one database, migrations under a
lock, and a database that is wrong or gone. Everything runs on the session's throwaway cluster.

The races are forced, not hoped for: replica A's transaction does its write and stays open; replica
B's competing statement is started and seen blocked in pg_locks; only then does A commit. B must
then see A's committed row (and lose), never win a second time.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from floodlight_trust.errors import InputError, StorageUnavailable
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.migrations import STEPS
from floodlight_trust.storage.postgres import DDL, PostgresStorage
from floodlight_trust.storage.records import NewEnrollment, NoncePurpose, NonceRecord
from floodlight_trust.storage.url import PostgresUrl, parse_storage_url
from tests.storage.test_contract import certificate
from tests.support.cli import ftrust, ftrust_command
from tests.support.postgres import PgDatabase, TcpProxy

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BLOCK_TIMEOUT_SECONDS = 20
OUTAGE_SECONDS = 10  # long enough for psycopg-pool's own backoff to reach 4-8 s between attempts


def url_of(db: PgDatabase) -> PostgresUrl:
    url = parse_storage_url(db.url)
    assert isinstance(url, PostgresUrl)
    return url


@pytest.fixture()
def replicas(pg_database: PgDatabase) -> Iterator[tuple[PostgresStorage, PostgresStorage]]:
    """Two engines on one database, as two `vm serve` processes have (two pools, two sessions)."""
    a = PostgresStorage(url_of(pg_database), pool_size=2)
    b = PostgresStorage(url_of(pg_database), pool_size=2)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def waiting_backends(db: PgDatabase) -> int:
    with psycopg.connect(db.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def race(db: PgDatabase, first: Callable[[], Any], second: Callable[[], Any], *, commit: Callable[[], None]) -> Any:
    """Run ``first`` (in an open transaction), start ``second`` in a thread, wait until the database
    shows it blocked behind ``first``, then ``commit``; return what ``second`` returned (or raised)."""
    first()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = second()
        except Exception as e:  # the test asserts on it
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + BLOCK_TIMEOUT_SECONDS
    while waiting_backends(db) == 0:
        assert thread.is_alive(), f"the second replica did not wait for the first: {outcome}"
        assert time.monotonic() < deadline, "the second replica never blocked"
        time.sleep(0.01)
    commit()
    thread.join(BLOCK_TIMEOUT_SECONDS)
    assert not thread.is_alive()
    if "error" in outcome:
        return outcome["error"]
    return outcome["value"]


class OpenTransaction:
    """A transaction of one replica held open across the race (committed by :meth:`commit`)."""

    def __init__(self, storage: PostgresStorage):
        self._cm = storage.transaction()
        self.tx = self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)


def test_the_ddl_covers_exactly_the_migration_steps() -> None:
    assert set(DDL) == {s.key for s in STEPS}


def test_two_replicas_spending_one_nonce_one_wins(replicas: tuple[PostgresStorage, PostgresStorage],
                                                 pg_database: PgDatabase) -> None:  # fmt: skip
    """Replica A has inserted the spent nonce and not committed; B's insert of the same nonce waits
    for A's commit and then inserts nothing."""
    a, b = replicas
    record = NonceRecord("s2", b"w" * 32, NoncePurpose.ENCLAVE, "h1", "fw", AT, AT + timedelta(minutes=1), AT)
    held = OpenTransaction(a)
    won: list[bool] = []
    lost = race(pg_database, lambda: won.append(held.tx.nonces.spend(record)),
                lambda: b.nonces.spend(record), commit=held.commit)  # fmt: skip
    assert (won, lost) == ([True], False)
    assert b.nonces.find("s2") == record


def test_two_replicas_binding_one_name_one_enclave_gets_it(replicas: tuple[PostgresStorage, PostgresStorage],
                                                          pg_database: PgDatabase) -> None:  # fmt: skip
    a, b = replicas
    a.hosts.add("h1", None, None, at=AT)
    a.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    held = OpenTransaction(a)
    won: list[bool] = []
    first = lambda: won.append(held.tx.enrollments.bind("h1", "fw", public_key_sha256="k1", mrenclave="m1", at=AT))  # noqa: E731
    lost = race(pg_database, first, lambda: b.enrollments.bind("h1", "fw", public_key_sha256="k2", mrenclave="m2",
                                                              at=AT), commit=held.commit)  # fmt: skip
    assert (won, lost) == ([True], False)
    reg = b.enrollments.registration("h1", "fw")
    assert reg is not None and (reg.bound_public_key_sha256, reg.bound_mrenclave) == ("k1", "m1")


def test_two_replicas_binding_one_key_to_two_names_only_one_binds(replicas: tuple[PostgresStorage, PostgresStorage],
                                                                 pg_database: PgDatabase) -> None:  # fmt: skip
    """The losing write is to ANOTHER row: the key's advisory lock orders the two transactions."""
    a, b = replicas
    a.hosts.add("h1", None, None, at=AT)
    a.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    a.enrollments.register_vnf("h1", "ids", enroll_rule="r", by="admin", at=AT)
    held = OpenTransaction(a)
    won: list[bool] = []
    first = lambda: won.append(held.tx.enrollments.bind("h1", "fw", public_key_sha256="k1", mrenclave="m1", at=AT))  # noqa: E731
    lost = race(pg_database, first, lambda: b.enrollments.bind("h1", "ids", public_key_sha256="k1", mrenclave="m1",
                                                              at=AT), commit=held.commit)  # fmt: skip
    assert (won, lost) == ([True], False)
    assert b.enrollments.bound_name("k1") == ("h1", "fw")
    ids = b.enrollments.registration("h1", "ids")
    assert ids is not None and ids.bound_public_key_sha256 is None


def test_two_replicas_recording_one_serial_record_it_once(replicas: tuple[PostgresStorage, PostgresStorage],
                                                         pg_database: PgDatabase) -> None:  # fmt: skip
    a, b = replicas
    cert = certificate(0x5EED)
    held = OpenTransaction(a)
    lost = race(pg_database, lambda: held.tx.certificates().record_issued(cert, at=AT),
                lambda: b.certificates().record_issued(cert, at=AT), commit=held.commit)  # fmt: skip
    assert isinstance(lost, InputError) and "5eed is already recorded" in str(lost)
    assert [r.serial for r in b.certificates().list()] == [0x5EED]


def test_two_replicas_enrolling_one_vnf_leave_one_active_certificate(
    replicas: tuple[PostgresStorage, PostgresStorage], pg_database: PgDatabase
) -> None:
    a, b = replicas
    audit_id = a.audit.record(at=AT, actor="t", action="enroll", allowed=True)

    def new(serial: str) -> NewEnrollment:
        return NewEnrollment(host="h1", vnf="fw", serial=serial, certificate_sha256="c", public_key_sha256="k",
                             key_mode="enclave", mrenclave="m", policy_version=None, audit_id=audit_id, issued_at=AT,
                             not_after=AT + timedelta(hours=1))  # fmt: skip

    held = OpenTransaction(a)
    race(pg_database, lambda: held.tx.enrollments.record_enrollment(new("0a")),
         lambda: b.enrollments.record_enrollment(new("0b")), commit=held.commit)  # fmt: skip
    states = {e.serial: (e.status, e.superseded_by) for e in b.enrollments.enrollments()}
    assert states == {"0a": ("superseded", "0b"), "0b": ("active", None)}


def test_two_replicas_pinning_one_platform_see_each_other(replicas: tuple[PostgresStorage, PostgresStorage],
                                                         pg_database: PgDatabase) -> None:  # fmt: skip
    from floodlight_trust.storage.records import HostAttestationRecord

    a, b = replicas
    for host in ("h1", "h2"):
        a.hosts.add(host, None, None, at=AT)
    trusted = HostAttestationRecord(trusted=True, at=AT, reasons=(), policy_version=None, platform_key="dcap-pck:aa")
    held = OpenTransaction(a)

    def pin_first() -> None:
        assert held.tx.hosts.platform_owner("dcap-pck:aa", other_than="h1") is None
        held.tx.hosts.record_attestation("h1", trusted)

    def judge_second() -> str | None:
        with b.transaction() as tx:  # the judge's re-check inside the recording transaction
            return tx.hosts.platform_owner("dcap-pck:aa", other_than="h2")

    assert race(pg_database, pin_first, judge_second, commit=held.commit) == "h1"


def test_a_write_callback_runs_again_after_a_deadlock(replicas: tuple[PostgresStorage, PostgresStorage],
                                                     pg_database: PgDatabase) -> None:  # fmt: skip
    """Two replicas locking two rows in opposite orders: PostgreSQL aborts one; write() re-runs it."""
    a, b = replicas
    for host in ("h1", "h2"):
        a.hosts.add(host, None, None, at=AT)
    calls: list[str] = []
    a_has_h1, b_has_h2 = threading.Event(), threading.Event()

    def a_fn(tx: Any) -> None:
        calls.append("a")
        tx.hosts.mark_untrusted("h1", [{"by": "a"}])
        a_has_h1.set()
        b_has_h2.wait(BLOCK_TIMEOUT_SECONDS)
        tx.hosts.mark_untrusted("h2", [{"by": "a"}])

    def b_fn(tx: Any) -> None:
        calls.append("b")
        tx.hosts.mark_untrusted("h2", [{"by": "b"}])
        b_has_h2.set()
        a_has_h1.wait(BLOCK_TIMEOUT_SECONDS)
        tx.hosts.mark_untrusted("h1", [{"by": "b"}])

    threads = [threading.Thread(target=a.write, args=(a_fn,)), threading.Thread(target=b.write, args=(b_fn,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    # Both ran, and the aborted one ran again (on a loaded machine its retry may itself meet the
    # winner's row locks and be aborted once more before it commits: 3 calls or more).
    assert sorted(calls[:2]) == ["a", "b"] and len(calls) >= 3
    winner = calls[-1]
    assert calls.count(winner) == len(calls) - 1  # only the aborted one was ever re-run
    assert {h.name: h.reasons for h in a.hosts.all()} == {"h1": ({"by": winner},), "h2": ({"by": winner},)}


def test_two_processes_racing_migrations_apply_each_step_once(pg_blank_database: PgDatabase, tmp_path: Path) -> None:
    pg_database = pg_blank_database
    config = tmp_path / "ftrust.toml"
    config.write_text(f'[state]\ndir = "state"\n[storage]\nurl = "{pg_database.url_without_password}"\n')
    env = {**os.environ, "FTRUST_DB_PASSWORD": pg_database.password}  # never on a command line
    argv = ftrust_command("vm", "migrate", "--json", config=config)
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    import json

    applied = sorted(len(json.loads(out)["applied"]) for out, _ in outs)
    assert applied == [0, len(STEPS)]  # one migrated, the other waited for the lock and found it done
    with psycopg.connect(pg_database.url) as conn:
        rows = conn.execute("SELECT component, version FROM schema_migrations").fetchall()
    assert sorted(rows) == sorted(s.key for s in STEPS)
    for out, err in outs:
        assert pg_database.password not in out + err


def test_vm_migrate_reports_then_finds_nothing_to_do(pg_blank_database: PgDatabase, tmp_path: Path) -> None:
    pg_database = pg_blank_database
    config = tmp_path / "ftrust.toml"
    config.write_text(f'[storage]\nurl = "{pg_database.url}"\n')
    config.chmod(0o600)  # it holds the password
    first = ftrust("vm", "migrate", config=config)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"applied {len(STEPS)} migration(s) to {pg_database.url_without_password}:")
    again = ftrust("vm", "migrate", config=config)
    assert again.stdout.strip() == f"{pg_database.url_without_password} is up to date ({len(STEPS)} migrations)"
    assert pg_database.password not in first.stdout + first.stderr + again.stdout + again.stderr


def test_a_wrong_password_is_a_clean_error_without_the_password(pg_database: PgDatabase) -> None:
    url = url_of(pg_database).with_password(Secret("not-" + pg_database.password, "test"))
    with pytest.raises(StorageUnavailable) as e:
        PostgresStorage(url)
    assert "password authentication failed" in str(e.value)
    assert pg_database.password not in str(e.value) and pg_database.url_without_password in str(e.value)


def test_a_database_that_goes_away_fails_cleanly_and_comes_back(pg_database: PgDatabase) -> None:
    storage = PostgresStorage(url_of(pg_database), pool_size=2, connect_timeout_seconds=2)
    try:
        storage.hosts.add("h1", None, None, at=AT)
        with psycopg.connect(pg_database.url, autocommit=True) as admin:  # every session of ours is cut
            admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )  # (with a timeout: returns once they are gone, as after a server restart)
        # The pool checks a connection before handing it out (a round trip once the server's
        # termination notice is there), so the next call reconnects by itself.
        storage.check()
        assert storage.hosts.get("h1").name == "h1"
        with pytest.raises(StorageUnavailable, match="database unavailable"), storage.transaction() as tx:
            tx.hosts.add("h2", None, None, at=AT)
            with psycopg.connect(pg_database.url, autocommit=True) as admin:  # cut mid-transaction
                admin.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )  # (waits until they are gone: the pool's idle one too, whose notice its check then sees)
            tx.hosts.add("h3", None, None, at=AT)
        assert [h.name for h in storage.hosts.all()] == ["h1"]  # nothing of the cut transaction
    finally:
        storage.close()


def test_a_stopped_server_is_unavailable_at_once_and_in_check(tmp_path: Path) -> None:
    from tests.support.postgres import LocalCluster, find_bindir

    bindir = find_bindir()
    assert bindir is not None
    cluster = LocalCluster(bindir).start()
    try:
        url = parse_storage_url(cluster.url())
        assert isinstance(url, PostgresUrl)
        storage = PostgresStorage(url, pool_size=1, connect_timeout_seconds=2)
        storage.check()
        cluster.stop()
        with pytest.raises(StorageUnavailable, match="database unavailable"):
            storage.check()
        with pytest.raises(StorageUnavailable, match="database unavailable"):
            storage.hosts.all()
        storage.close()
        with pytest.raises(StorageUnavailable, match=r"database unavailable \(postgresql://ftrust@127\.0\.0\.1"):
            PostgresStorage(url, connect_timeout_seconds=2)
    finally:
        cluster.stop()


def test_after_a_long_outage_the_engine_reconnects_within_seconds_of_the_return(pg_database: PgDatabase) -> None:
    """psycopg-pool retries a failed connection with exponential backoff (1, 2, 4, 8... s) for its
    reconnect_timeout; with its default (5 min) the next attempt after an outage of T seconds may
    come up to T seconds after the database is back, the replica unhealthy all that time. The
    engine starts a fresh attempt every few seconds instead: back within seconds whatever the outage."""
    proxy = TcpProxy(("127.0.0.1", pg_database.cluster.port)).start()
    url = parse_storage_url(proxy.url(pg_database.url))
    assert isinstance(url, PostgresUrl)
    storage = PostgresStorage(url, pool_size=2, connect_timeout_seconds=1)
    try:
        storage.hosts.add("h1", None, None, at=AT)
        proxy.cut()  # every connection cut, new ones refused, for OUTAGE seconds
        down_until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < down_until:  # requests go on meanwhile, as a replica's revocation poll
            with pytest.raises(StorageUnavailable, match="database unavailable"):
                storage.check()
        proxy.restore()
        back = time.monotonic()
        while True:
            try:
                storage.check()
                break
            except StorageUnavailable:
                assert time.monotonic() - back < 30, "the engine did not reconnect"
        print(f"reconnected {time.monotonic() - back:.2f} s after the database was back")
        # At most 2 s between attempts (RECONNECT_SECONDS), plus the connection itself; with the
        # pool's default this took 3.9-4.4 s after a 10 s outage (12.7 s after a 16 s one).
        assert time.monotonic() - back < 3.0
        assert storage.hosts.get("h1").name == "h1"
    finally:
        proxy.cut()
        storage.close()


def test_a_replica_that_vanishes_mid_transaction_does_not_keep_its_locks(
    replicas: tuple[PostgresStorage, PostgresStorage], pg_database: PgDatabase
) -> None:
    """Replica A's machine dies (power, network) while its transaction holds a row lock. No FIN
    reaches PostgreSQL, whose session would wait for its client (until TCP keepalive, two hours by
    default) holding the lock: every other replica's write to that row would wait as long (a nonce,
    an enrollment's guard, a host's lease skipped by every claim). The engine's sessions end
    themselves once idle inside a transaction for IDLE_IN_TRANSACTION_SECONDS: B's write goes on."""
    _, b = replicas
    proxy = TcpProxy(("127.0.0.1", pg_database.cluster.port)).start()
    url = parse_storage_url(proxy.url(pg_database.url))
    assert isinstance(url, PostgresUrl)
    a = PostgresStorage(url, pool_size=1, idle_in_transaction_seconds=1)
    try:
        spent = NonceRecord("s1", b"v" * 32, NoncePurpose.HOST, "h1", None, AT, AT + timedelta(minutes=1), AT)
        held = OpenTransaction(a)
        assert held.tx.nonces.spend(spent)  # A holds the selector's uncommitted row
        proxy.freeze()  # A is gone without a word
        t0 = time.monotonic()
        burnt: list[bool] = []  # B waits for A's session to end, then spends the nonce (A's spend rolled back)
        writer = threading.Thread(target=lambda: burnt.append(b.nonces.spend(spent)), daemon=True)
        writer.start()
        writer.join(BLOCK_TIMEOUT_SECONDS)
        assert burnt == [True], f"B's write still waits for A's lock {BLOCK_TIMEOUT_SECONDS} s after A vanished"
        print(f"B's write went on {time.monotonic() - t0:.2f} s after A vanished")
    finally:
        proxy.cut()
        a.close()
