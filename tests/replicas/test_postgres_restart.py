"""PostgreSQL restarted under load with two replicas: requests in flight fail with a clean 503 (one
line, nothing half-written), both replicas report unhealthy while it is down and reconnect by
themselves when it is back; every acknowledged enrollment is on record, one to one with its
certificate."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from floodlight_trust.agent.service import enroll_via_vm
from floodlight_trust.errors import FtrustError
from tests.replicas.cluster import DB_PASSWORD, Cluster, wait_for
from tests.replicas.test_faults import Failover, consistent
from tests.support.postgres import LocalCluster, require_postgres


def test_postgres_restart_under_load(tmp_path: Path) -> None:
    with LocalCluster(require_postgres()) as pg:  # a cluster of its own: this test stops its server
        db = pg.create_database()
        c = Cluster(tmp_path / "deploy", database_url=pg.url(db, password=False), env={DB_PASSWORD: pg.password})
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
                        time.sleep(0.05)
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
                for replica in (a, b):
                    wait_for(lambda r=replica: r.health().status_code == 503, what="503 health")
                    health = replica.health()
                    assert health.status_code == 503 and health.json()["status"] == "unavailable"
                    assert "database unavailable" in health.json()["reason"]
                nonce = requests.post(
                    a.api_url + "/v1/nonces", json={"purpose": "host", "host": hosts[0].name},
                    verify=str(a.server_certificate), timeout=30,
                )  # fmt: skip
                assert nonce.status_code == 503 and nonce.json()["error"]["type"] == "StorageUnavailable"
                assert "\n" not in nonce.json()["error"]["message"]
                crl = a.crl()
                assert crl.status_code == 503  # no stale CRL while the state cannot be read
                during = len(acknowledged)
            finally:
                pg.start_server()
            # The replicas were never restarted: they reconnect by themselves.
            for replica in (a, b):
                wait_for(lambda r=replica: r.health().status_code == 200, timeout=60, what="healthy again")
            wait_for(lambda: len(acknowledged) >= during + 10, timeout=90, what="enrollments after the restart")
            stop.set()
            for t in threads:
                t.join(60)
            assert failures, "the restart cut no request: the test did not test anything"
            assert not [f for f in failures if "internal error" in f], failures  # never a 500
            by_serial = consistent(c)
            assert set(acknowledged.values()) <= set(by_serial)
            assert a.alive and b.alive
        finally:
            stop.set()  # the load threads end whatever failed above
            c.close()
