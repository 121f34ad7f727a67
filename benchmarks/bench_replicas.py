"""Enrollments through `ftrust vm serve` replicas: 1 and 2 replicas on PostgreSQL versus one process on
SQLite, with the agents in other processes, and the VM's CPU per enrollment.

One enrollment is bench_vm's: ask a nonce, build the enclave's evidence (a simulated DCAP quote
binding the nonce and the enclave key), POST it, verify (DCAP + binding + policy), issue the
certificate and record certificate, enrollment and audit in one transaction, install the
certificate in the enclave. Here the VMs are real `vm serve` processes started from a config (as an
operator runs them) and the load comes from LOADERS other processes of CLIENTS threads each; with
two replicas each client thread talks to one replica (half the threads each, as behind a balancer).

Rounds are interleaved: every round runs one burst of BURST enrollments on each case, in an order
that rotates, so load on the shared machine falls on every case alike; rates are medians of the
rounds, latencies are p50/p99 of every enrollment of every round. VM CPU is the user + system time
of the case's `vm serve` processes (``/proc/PID/stat``, what ``getrusage(RUSAGE_SELF)`` reports
inside them) during its bursts, divided by the enrollments.

PostgreSQL: a throwaway cluster (initdb + pg_ctl, as the tests start one: tests/support/postgres.py)
with fsync on, so a commit costs what it costs on a server; without PostgreSQL binaries the PG rows
say so and only SQLite is measured.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import Result
from benchmarks.fixtures import start_vm_serve, stop_processes, write_vm_site

BURST = 200  # enrollments per case per round
ROUNDS = 3
LOADERS = 2  # agent processes
CLIENTS = 4  # threads per agent process
IMAGE = b"benchmark VNF image"
FILES = {"boot_aggregate": hashlib.sha256(b"boot").digest(), "/usr/bin/agent": hashlib.sha256(b"a").digest()}
PASSWORD = "benchmark CA password"
ADMIN_PASSWORD = "benchmark admin key password"
ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc; the figures getrusage gives it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def env() -> dict[str, str]:
    return {**os.environ, "FTRUST_CA_PASSWORD": PASSWORD, "FTRUST_ADMIN_KEY_PASSWORD": ADMIN_PASSWORD}


@dataclass
class Case:
    """One deployment: its config, its `vm serve` processes, and its agents' processes."""

    name: str
    root: Path
    replicas: int
    storage_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    api_urls: list[str] = field(default_factory=list)
    loaders: list[Any] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_per_enrollment: list[float] = field(default_factory=list)
    burst_number: int = 0

    def ftrust(self, *argv: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "floodlight_trust", "--config", str(self.root / "ftrust.toml"), *argv],
            capture_output=True, text=True, env={**env(), **self.extra_env}, cwd=ROOT, timeout=300, check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"ftrust {' '.join(argv)} failed: {r.stderr.strip()}")
        return r.stdout

    def set_up(self, platform_dir: Path) -> None:
        write_vm_site(
            self.root, IMAGE, FILES, storage_url=self.storage_url, platform_dir=platform_dir,
            vm_settings='reattest_interval_seconds = 0\nself_registering_enroll_rules = ["r"]\n',
        )  # fmt: skip
        if self.storage_url:
            self.ftrust("vm", "migrate")
        self.ftrust("ca", "init")
        self.ftrust("vm", "admin-cert", "bench")
        for _ in range(self.replicas):
            proc, url = start_vm_serve(self.root / "ftrust.toml", {**env(), **self.extra_env})
            self.procs.append(proc)
            self.api_urls.append(url)
        from floodlight_trust.manager.client import VmClient
        from floodlight_trust.secrets import Secret

        state = self.root / "state"
        admin = VmClient(
            self.api_urls[0], server_certificate=state / "vm-tls" / "server.pem",
            client_certificate=(str(state / "admin" / "bench.pem"), str(state / "admin" / "bench.key")),
            client_key_password=Secret(ADMIN_PASSWORD, "bench"),
        )  # fmt: skip
        try:
            for i in range(LOADERS):
                admin.add_host(f"bench-host-{i}", "http://127.0.0.1:9")  # agent-initiated enrollments only
        finally:
            admin.close()

    def start_loaders(self, platform_dirs: list[Path], ima: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        for i in range(LOADERS):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_loader,
                args=(child, str(platform_dirs[i]), str(ima), f"bench-host-{i}", self.api_urls,
                      str(self.root / "state" / "vm-tls" / "server.pem"), str(self.root / "state" / "ca")),
                daemon=True,
            )  # fmt: skip
            proc.start()
            child.close()
            ready = parent.recv()
            if ready != "ready":
                raise RuntimeError(f"{self.name}: agent process failed: {ready}")
            self.loaders.append((proc, parent))

    def burst(self) -> None:
        """BURST enrollments spread over the agent processes; records rate, latencies and VM CPU."""
        self.burst_number += 1
        share = BURST // LOADERS
        cpu0 = sum(cpu_seconds(p.pid) for p in self.procs)
        t0 = time.perf_counter()
        for _, conn in self.loaders:
            conn.send(("burst", self.burst_number, share))
        docs = [conn.recv() for _, conn in self.loaders]
        elapsed = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p.pid) for p in self.procs) - cpu0
        for doc in docs:
            if "error" in doc:
                raise RuntimeError(f"{self.name}: {doc['error']}")
            self.latencies += doc["latencies"]
        done = share * LOADERS
        self.rates.append(done / elapsed)
        self.cpu_per_enrollment.append(cpu / done * 1000)

    def close(self) -> None:
        for proc, conn in self.loaders:
            try:
                conn.send(("stop", 0, 0))
            except OSError:
                pass
            proc.join(10)
        stop_processes(self.procs, 30)


def _loader(conn: Any, platform_dir: str, ima: str, host: str, api_urls: list[str], tls: str, ca_dir: str) -> None:
    """An agents' process: its host's agent and VNF enclaves; enrolls on request, CLIENTS threads."""
    try:
        from floodlight_trust.agent.backends.sim import SimBackend
        from floodlight_trust.agent.imasource import ImaSource
        from floodlight_trust.agent.service import Agent, enroll_via_vm
        from floodlight_trust.manager.client import VmClient
        from floodlight_trust.pki.ca import load_ca_certificate
        from floodlight_trust.sgxsim import SimulatedPlatform

        backend = SimBackend(SimulatedPlatform.load(Path(platform_dir)), vm_ca=load_ca_certificate(Path(ca_dir)))
        agent = Agent(host, backend, ImaSource(None, Path(ima)))
        clients = [VmClient(api_urls[i % len(api_urls)], server_certificate=tls) for i in range(CLIENTS)]
        local = threading.local()
        counter = iter(range(1 << 30))
        lock = threading.Lock()

        def client() -> VmClient:
            if not hasattr(local, "vm"):
                with lock:
                    local.vm = clients[next(counter) % CLIENTS]
            return local.vm  # type: ignore[no-any-return]

        first = clients[0]
        if not first.submit_host_evidence(agent.host_evidence(first.nonce("host", host)))["trusted"]:
            raise RuntimeError("host not trusted")
        warm = [f"vnf-{host}-warm-{i}" for i in range(CLIENTS * 2)]
        for n in warm:
            backend.add_enclave(n, IMAGE)
        pool = ThreadPoolExecutor(CLIENTS)

        def one(name: str) -> float:
            t0 = time.perf_counter()
            doc = enroll_via_vm(agent, client(), name, attest_host=False)
            if not doc["allowed"]:
                raise RuntimeError(f"refused: {doc['reasons']}")
            return time.perf_counter() - t0

        list(pool.map(one, warm))
        conn.send("ready")
        while True:
            command, number, count = conn.recv()
            if command == "stop":
                break
            names = [f"vnf-{host}-b{number}-{i:04d}" for i in range(count)]
            for n in names:
                backend.add_enclave(n, IMAGE)
            conn.send({"latencies": list(pool.map(one, names))})
        pool.shutdown()
    except BaseException as e:  # reported to the parent, which fails the benchmark
        conn.send({"error": repr(e)})
    finally:
        conn.close()


@contextmanager
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster with fsync ON, or None when its binaries are missing."""
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        support = importlib.import_module("tests.support.postgres")  # the tests' throwaway cluster
    except ImportError:
        yield None
        return
    bindir = support.find_bindir()
    if bindir is None:
        yield None
        return
    cluster = support.LocalCluster(bindir, durable=True)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def run() -> list[Result]:
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry
    from floodlight_trust.sgxsim import SimulatedPlatform

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp_name, postgres() as pg:
        tmp = Path(tmp_name)
        root_platform = SimulatedPlatform.create(tmp / "platform")
        hosts = [SimulatedPlatform.create(tmp / f"host-{i}", authority=root_platform).directory for i in range(LOADERS)]
        ima = tmp / "ima.log"
        ima.write_bytes("".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in FILES.items()).encode())
        cases = [Case("SQLite, 1 process", tmp / "sqlite", 1)]
        if pg is not None:
            for name, n in (("PostgreSQL, 1 replica", 1), ("PostgreSQL, 2 replicas", 2)):
                db = pg.create_database()
                cases.append(
                    Case(name, tmp / f"pg{n}", n, storage_url=pg.url(db, password=False),
                         extra_env={"FTRUST_DB_PASSWORD": pg.password})
                )  # fmt: skip
        try:
            for case in cases:
                case.root.mkdir()
                case.set_up(root_platform.directory)
                case.start_loaders(hosts, ima)
            for r in range(ROUNDS):
                for k in range(len(cases)):
                    cases[(r + k) % len(cases)].burst()
        finally:
            for case in cases:
                case.close()
    work = (
        f"{BURST} enrollments per round over HTTPS (nonce, sim quote, POST, verify, issue, record, install) "
        f"from {LOADERS} agent processes x {CLIENTS} threads; {ROUNDS} interleaved rounds"
    )
    for case in cases:
        lat = sorted(case.latencies)
        results += [
            Result(f"enrollments/s ({case.name})", statistics.median(case.rates), "1/s", work=work),
            Result(f"enrollment latency p50 ({case.name})", statistics.median(lat) * 1000, "ms",
                   work="client-side, nonce request to installed, every enrollment of every round"),
            Result(f"enrollment latency p99 ({case.name})", lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "ms"),
            Result(f"VM CPU per enrollment ({case.name})", statistics.median(case.cpu_per_enrollment), "ms",
                   work="user + system CPU of the case's vm serve processes during its bursts / enrollments"),
        ]  # fmt: skip
    if len(cases) == 1:
        results.append(Result("PostgreSQL cases", float("nan"), "", "skipped: no PostgreSQL server binaries"))
    load1, load5, _ = os.getloadavg()
    results.append(Result("load average (1 min) at the end; machine shared", load1, "", f"5 min {load5:.2f}"))
    print(json.dumps({c.name: {"rates": c.rates, "cpu_ms": c.cpu_per_enrollment} for c in cases}), file=sys.stderr)
    return results
