"""Faults with two replicas: kill -9 of one during 50 concurrent enrollments and during a round.

After the kill, clients go on through the survivor (as behind a load balancer): no acknowledged
enrollment is lost, every certificate on record has its enrollment record and the other way round,
no serial appears twice, every enclave holds a certificate the VM recorded, and the survivor
finishes the round the killed replica had started.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floodlight_trust import clock
from floodlight_trust.agent.service import enroll_via_vm
from floodlight_trust.errors import FtrustError
from floodlight_trust.storage.leases import lease_store
from floodlight_trust.storage.sqlite import SqliteStorage
from tests.replicas.cluster import Cluster, Host, Replica, wait_for

HOSTS, VNFS_PER_HOST = 10, 5  # 50 enrollments


class Failover:
    """The agent-facing client of a load balancer: a call that fails on one replica (connection
    refused or cut, 503) is made again on the next one."""

    def __init__(self, replicas: list[Replica], start: int):
        self.replicas = replicas
        self.start = start

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            last: Exception | None = None
            for i in range(len(self.replicas)):
                replica = self.replicas[(self.start + i) % len(self.replicas)]
                if not replica.alive:
                    continue
                try:
                    return getattr(replica.anonymous, name)(*args)
                except FtrustError as e:
                    if "nonce" in e.message:  # spent by a replica that died before answering: start again
                        raise
                    last = e
            raise AssertionError(f"no replica answered {name}: {last}")

        return call


def _time(value: object) -> datetime:
    """A time column as the engine returns it (SQLite: ISO text; PostgreSQL: a datetime)."""
    return value if isinstance(value, datetime) else clock.parse_time(str(value))


def consistent(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Certificates and enrollment records match one to one; returns the enrollments by serial."""
    certificates = {
        r["serial"]: r for r in cluster.rows("SELECT serial, sha256, subject FROM pki_certificates")
        if "ftrust-controller" not in r["subject"]
    }  # fmt: skip
    enrollments = cluster.rows("SELECT * FROM manager_enrollments")
    counts = Counter(e["serial"] for e in enrollments)
    assert all(n == 1 for n in counts.values()), "a serial recorded twice"
    by_serial = {e["serial"]: e for e in enrollments}
    assert set(certificates) == set(by_serial), "a certificate without its enrollment record, or the other way round"
    assert all(by_serial[s]["certificate_sha256"] == c["sha256"] for s, c in certificates.items())
    return by_serial


def test_kill_one_replica_during_50_concurrent_enrollments(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        a, b = c.start_replica("a"), c.start_replica("b")
        hosts: list[Host] = []
        for _ in range(HOSTS):
            host = c.start_host()
            a.admin.add_host(host.name, host.url)
            hosts.append(host)
        work = []
        for i, host in enumerate(hosts):
            for j in range(VNFS_PER_HOST):
                vnf = f"vnf-fw-k{i}x{j}"
                c.add_vnf(host, vnf)
                (a, b)[j % 2].admin.add_vnf(host.name, vnf)
                work.append((host, vnf))
        acknowledged: dict[str, str] = {}  # vnf -> serial the VM answered with
        errors: list[str] = []
        lock = threading.Lock()
        go = threading.Barrier(len(work))

        def enroll(n: int, host: Host, vnf: str) -> None:
            go.wait()
            for _ in range(5):  # an attempt cut by the kill is made again, with a fresh nonce
                try:
                    result = enroll_via_vm(host.agent, Failover([a, b], n), vnf)
                except (FtrustError, AssertionError) as e:
                    last = str(e)
                    continue
                if result["allowed"]:
                    with lock:
                        acknowledged[vnf] = result["serial"]
                    return
                last = str(result["reasons"])
            with lock:
                errors.append(f"{vnf}: {last}")

        threads = [threading.Thread(target=enroll, args=(n, h, v)) for n, (h, v) in enumerate(work)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acknowledged) >= 10, timeout=60, what="10 enrollments")
        a.kill()  # mid-flight: about 40 enrollments still running, half of them through A
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert set(acknowledged) == {v for _, v in work}  # every VNF enrolled, through the survivor if need be
        by_serial = consistent(c)
        assert set(acknowledged.values()) <= set(by_serial)  # no acknowledged enrollment lost
        # Exactly one active enrollment per VNF (a retry supersedes the attempt the kill cut off).
        active = Counter(e["vnf"] for e in by_serial.values() if e["status"] == "active")
        assert active == Counter({v: 1 for _, v in work})
        for host, vnf in work:  # what each enclave holds is a certificate the VM recorded
            creds = host.backend.enclave(vnf).credentials
            assert creds is not None and creds.certificate_sha256 in {e["certificate_sha256"] for e in by_serial.values()}
        assert b.health().json()["status"] == "ok"
    finally:
        c.close()


def test_kill_one_replica_during_a_round_the_survivor_finishes_it(tmp_path: Path) -> None:
    """Rounds every 2 s renewing every VNF (renew_before >= validity), leases of 1 s; A is killed
    while it holds hosts mid-round: B attests and renews them, and the records stay one to one."""
    c = Cluster(tmp_path, reattest_interval=2, extra_config="reattest_lease_seconds = 1")
    try:
        a = c.start_replica("a")
        hosts = [c.start_host(host_evidence_delay=0.2) for _ in range(4)]
        for i, h in enumerate(hosts):
            a.admin.add_host(h.name, h.url)
            for j in range(2):
                vnf = f"vnf-fw-r{i}x{j}"
                c.add_vnf(h, vnf)
                a.admin.add_vnf(h.name, vnf)
                assert a.admin.enroll(h.name, vnf)["allowed"]
        b = c.start_replica("b")
        store = lease_store(SqliteStorage(tmp_path / "state" / "ftrust.sqlite3"))
        owner_a = a.health().json()["reattest"]["replica"]
        owner_b = b.health().json()["reattest"]["replica"]
        held = wait_for(lambda: [x.host for x in store.leases() if x.owner == owner_a], what="A to hold a lease")
        killed = datetime.now(UTC)
        a.kill()
        rows = lambda: {x.host: x for x in store.leases()}  # noqa: E731
        wait_for(
            lambda: all(rows()[h].attested_by == owner_b and (rows()[h].attested_at or killed) > killed for h in held),
            timeout=10, what="B to finish A's hosts",
        )  # fmt: skip
        renewed_after = [
            e for e in c.rows("SELECT * FROM manager_enrollments")
            if _time(e["issued_at"]) > killed and e["host"] in held
        ]  # fmt: skip
        assert renewed_after, "B renewed none of the certificates on the hosts A held"
        b.stop()
        by_serial = consistent(c)
        active = Counter((e["host"], e["vnf"]) for e in by_serial.values() if e["status"] == "active")
        assert set(active.values()) == {1} and len(active) == 8
        for i, h in enumerate(hosts):
            for j in range(2):
                creds = h.backend.enclave(f"vnf-fw-r{i}x{j}").credentials
                assert creds is not None and creds.certificate_sha256 in {e["certificate_sha256"] for e in by_serial.values()}
    finally:
        c.close()
