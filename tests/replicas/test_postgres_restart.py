"""PostgreSQL faults under two replicas.

Restarted under load: requests in flight fail with a clean 503 (StorageUnavailable, one line; never
a 500), nothing is half-written, both replicas report unhealthy and serve no CRL or OCSP answer
while it is down, and they reconnect by themselves when it is back.

One replica cut off from the database (its network to PostgreSQL gone, the database and the other
replica fine): that replica reports unhealthy and answers 503 where it would need the state, so it
never serves a CRL that misses a revocation the other replica made meanwhile; when the network is
back it reconnects by itself and serves the other's CRL byte for byte.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from cryptography import x509

from floodlight_trust.agent.service import enroll_via_vm
from floodlight_trust.errors import FtrustError
from floodlight_trust.pki.records import parse_serial
from tests.replicas.cluster import DB_PASSWORD, Cluster, Replica, wait_for
from tests.replicas.test_faults import Failover, consistent
from tests.replicas.test_shared_state import enrolled
from tests.support.postgres import LocalCluster, PgDatabase, TcpProxy, require_postgres

# What the VM answers when the state cannot be used (StorageUnavailable, HTTP 503): the client
# shows "server: database unavailable (...)" or "server: database busy: ..." (a rolled-back
# transaction); anything else (an internal error, a traceback) fails the tests.
CLEAN_503 = ("database unavailable", "database busy")


def state_unavailable(replica: Replica, host: str) -> None:
    """Every request of ``replica`` that needs the state answers 503 with one line: health, CRL,
    OCSP, a nonce (sent at once: each waits for the database up to its timeout)."""
    with ThreadPoolExecutor(4) as pool:
        health_f, crl_f = pool.submit(replica.health), pool.submit(replica.crl)
        ocsp_f = pool.submit(requests.post, replica.publish_url + "/ocsp", data=b"\x30\x00", timeout=30)
        nonce_f = pool.submit(
            requests.post, replica.api_url + "/v1/nonces", json={"purpose": "host", "host": host},
            verify=str(replica.server_certificate), timeout=30,
        )  # fmt: skip
        health, crl, ocsp, nonce = health_f.result(), crl_f.result(), ocsp_f.result(), nonce_f.result()
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert "database unavailable" in health.json()["reason"]
    assert crl.status_code == 503  # no stale CRL while the state cannot be read
    assert ocsp.status_code == 503
    assert nonce.status_code == 503 and nonce.json()["error"]["type"] == "StorageUnavailable"
    assert "\n" not in nonce.json()["error"]["message"]


def test_postgres_restart_under_load(tmp_path: Path) -> None:
    with LocalCluster(require_postgres()) as pg:  # a cluster of its own: this test stops its server
        db = pg.create_migrated_database()
        c = Cluster(
            tmp_path / "deploy", database_url=pg.url(db, password=False), env={DB_PASSWORD: pg.password},
            connect_timeout_seconds=3,  # a request waits 3 s for a database connection, then 503
        )  # fmt: skip
        stop = threading.Event()
        try:
            a, b = c.start_replica("a"), c.start_replica("b")
            hosts = []
            for _ in range(4):
                host = c.start_host()
                a.admin.add_host(host.name, host.url)
                hosts.append(host)
            acknowledged: dict[str, str] = {}
            failures: list[str] = []
            lock = threading.Lock()

            def load(n: int) -> None:
                host = hosts[n % len(hosts)]
                i = 0
                while not stop.is_set():
                    i += 1
                    vnf = f"vnf-fw-pg{n}x{i}"
                    c.add_vnf(host, vnf)
                    try:
                        (a, b)[i % 2].admin.add_vnf(host.name, vnf)
                        result = enroll_via_vm(host.agent, Failover([a, b], n), vnf)
                    except (FtrustError, AssertionError) as e:
                        with lock:
                            failures.append(str(e))
                        stop.wait(0.05)
                        continue
                    if result["allowed"]:
                        with lock:
                            acknowledged[vnf] = result["serial"]

            threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(6)]
            for t in threads:
                t.start()
            wait_for(lambda: len(acknowledged) >= 10, timeout=60, what="10 enrollments before the restart")
            pg.stop_server()  # fast shutdown: connections in use are cut
            try:
                wait_for(lambda: a.health().status_code == b.health().status_code == 503, what="503 health")
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(state_unavailable, (a, b), (hosts[0].name,) * 2))
                wait_for(lambda: failures, what="a request cut by the restart")
                during = len(acknowledged)
            finally:
                pg.start_server()
            back = time.monotonic()
            # The replicas were never restarted: they reconnect by themselves.
            for replica in (a, b):
                wait_for(lambda r=replica: r.health().status_code == 200, timeout=60, what="healthy again")
            print(f"both replicas healthy {time.monotonic() - back:.2f} s after PostgreSQL was back")
            wait_for(lambda: len(acknowledged) >= during + 10, timeout=90, what="enrollments after the restart")
            stop.set()
            for t in threads:
                t.join(60)
            assert failures, "the restart cut no request: the test did not test anything"
            unclean = [f for f in failures if not any(m in f for m in CLEAN_503)]
            assert not unclean, unclean  # never a 500, never a traceback
            by_serial = consistent(c)  # nothing half-written: certificates and records one to one
            assert set(acknowledged.values()) <= set(by_serial)
            assert a.alive and b.alive
        finally:
            stop.set()  # the load threads end whatever failed above
            c.close()


def test_a_replica_cut_off_from_postgresql_is_unhealthy_and_serves_no_stale_crl(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    c = Cluster(
        tmp_path, database_url=pg_database.url_without_password, env={DB_PASSWORD: pg_database.password},
        connect_timeout_seconds=3,
    )  # fmt: skip
    proxy = TcpProxy(("127.0.0.1", pg_database.cluster.port)).start()
    try:
        a = c.start_replica("a", database_url=proxy.url(pg_database.url_without_password))
        b = c.start_replica("b")
        host = enrolled(c, b, "vnf-fw-cut1", "vnf-fw-cut2")
        assert a.health().status_code == 200 and a.crl().status_code == 200
        proxy.cut()  # A's network to PostgreSQL is gone; PostgreSQL and B go on
        wait_for(lambda: a.health().status_code == 503, what="A unhealthy")
        state_unavailable(a, host.name)
        assert b.health().status_code == 200
        [serial] = b.admin.revoke(vnf="vnf-fw-cut1", reason="revoked while A was cut off")["revoked_serials"]
        crl_b = x509.load_der_x509_crl(b.crl().content)
        assert crl_b.get_revoked_certificate_by_serial_number(parse_serial(serial)) is not None
        assert a.crl().status_code == 503  # still: A never serves the CRL it signed before the revocation
        proxy.restore()
        back = time.monotonic()
        wait_for(lambda: a.health().status_code == 200, timeout=30, what="A healthy again")
        print(f"A healthy {time.monotonic() - back:.2f} s after its network was back")
        for _ in range(3):  # the same bytes from both (a refresh period may turn between the fetches)
            from_a, from_b = a.crl(), b.crl()
            if from_a.content == from_b.content:
                break
        assert from_a.status_code == 200 and from_a.content == from_b.content
        crl_a = x509.load_der_x509_crl(from_a.content)
        assert crl_a.get_revoked_certificate_by_serial_number(parse_serial(serial)) is not None
        assert {h["name"] for h in a.admin.hosts()} == {host.name}  # A serves requests again
    finally:
        proxy.cut()
        c.close()
