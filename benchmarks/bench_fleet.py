"""Re-attestation rounds over a simulated fleet (default 1,000 hosts): what docs/scaling.md's cost
model is checked against.

Every host is a real agent (sim backend, a simulated platform of its own, one VNF enclave enrolled),
all served by ONE agent process behind one HTTP port (``http://127.0.0.1:PORT/HOST``), so the VMs'
work is what it is for separate machines while the machine hosts them. The VMs are `vm serve`
processes on PostgreSQL (a throwaway cluster with fsync on; SQLite when PostgreSQL is missing).

Measured:

- one replica, one admin-triggered round over every host (``POST /v1/admin/reattest``): its wall
  time, the VM's CPU (``/proc/PID/stat`` user + system, what getrusage reports inside it) and the
  database's committed transactions and rows written (``pg_stat_database``) per host;
- two replicas sharing the rounds through leases with the loop on a short interval (every host always
  due, so both are saturated): hosts attested per second over a window, and CPU per host-round.

``FTRUST_BENCH_FLEET=N`` changes the fleet size.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import Result
from benchmarks.bench_replicas import ADMIN_PASSWORD, ROOT, cpu_seconds, env, postgres
from benchmarks.fixtures import start_vm_serve, stop_processes, write_vm_site

HOSTS = int(os.environ.get("FTRUST_BENCH_FLEET", "1000"))
WINDOW = 20.0  # seconds of the two-replica steady state
IMAGE = b"fleet VNF image"
FILES = {"boot_aggregate": hashlib.sha256(b"boot").digest(), "/usr/bin/agent": hashlib.sha256(b"a").digest()}


def _fleet(conn: Any, platforms: str, root_platform: str, ca_dir: str, ima: str, count: int) -> None:
    """The fleet's agents, one process: each host its own platform (PCK) and one VNF enclave."""
    try:
        from floodlight_trust.agent.backends.sim import SimBackend
        from floodlight_trust.agent.imasource import ImaSource
        from floodlight_trust.agent.service import Agent
        from floodlight_trust.http.server import HttpServer, JsonApp, Request
        from floodlight_trust.pki.ca import load_ca_certificate
        from floodlight_trust.sgxsim import SimulatedPlatform

        authority = SimulatedPlatform.load(Path(root_platform))
        ca = load_ca_certificate(Path(ca_dir))
        agents: dict[str, Agent] = {}
        for i in range(count):
            name = f"h{i:05d}"
            machine = SimulatedPlatform.create(Path(platforms) / name, authority=authority)
            backend = SimBackend(machine, vm_ca=ca)
            backend.add_enclave(f"vnf-{name}", IMAGE)
            agents[name] = Agent(name, backend, ImaSource(None, Path(ima)))
        app = JsonApp(max_body_bytes=1 << 20, name="fleet")

        @app.route("POST", "/{host}/v1/host/evidence")
        def host_evidence(request: Request, host: str) -> Any:
            body = request.json()
            return agents[host].host_evidence(bytes.fromhex(body["nonce"]), int(body.get("ima_offset", 0)))

        @app.route("POST", "/{host}/v1/vnfs/{vnf}/evidence")
        def enclave_evidence(request: Request, host: str, vnf: str) -> Any:
            return agents[host].enclave_evidence(vnf, bytes.fromhex(request.json()["nonce"]))

        @app.route("POST", "/{host}/v1/vnfs/{vnf}/credentials")
        def credentials(request: Request, host: str, vnf: str) -> Any:
            return agents[host].install(vnf, request.json())

        server = HttpServer(app, host="127.0.0.1", port=0, threads=32, name="fleet").start()
        conn.send(server.url)
        conn.recv()  # stop
        server.stop()
    except BaseException as e:  # reported to the parent, which fails the benchmark
        conn.send({"error": repr(e)})
    finally:
        conn.close()


class Fleet:
    def __init__(self, root: Path, storage_url: str, extra_env: dict[str, str], platform_dir: Path):
        self.root = root
        self.extra = extra_env
        self.config = write_vm_site(root, IMAGE, FILES, storage_url=storage_url, platform_dir=platform_dir)
        self.storage_url = storage_url
        self.procs: list[subprocess.Popen[str]] = []
        self.urls: list[str] = []

    def ftrust(self, *argv: str) -> None:
        r = subprocess.run(
            [sys.executable, "-m", "floodlight_trust", "--config", str(self.config), *argv],
            capture_output=True, text=True, env={**env(), **self.extra}, cwd=ROOT, timeout=300, check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"ftrust {' '.join(argv)} failed: {r.stderr.strip()}")

    def serve(self, interval: float) -> str:
        proc, url = start_vm_serve(self.config, {**env(), **self.extra}, "--reattest-interval", str(interval))
        self.procs.append(proc)
        self.urls.append(url)
        return self.urls[-1]

    def admin(self, url: str) -> Any:
        from floodlight_trust.manager.client import VmClient
        from floodlight_trust.secrets import Secret

        state = self.root / "state"
        return VmClient(
            url, server_certificate=state / "vm-tls" / "server.pem",
            client_certificate=(str(state / "admin" / "bench.pem"), str(state / "admin" / "bench.key")),
            client_key_password=Secret(ADMIN_PASSWORD, "bench"), timeout=600,
        )  # fmt: skip

    def stop(self) -> None:
        stop_processes(self.procs, 60)


def _db_counters(pg: Any, database: str) -> tuple[int, int]:
    """(committed transactions, rows inserted + updated + deleted) of ``database`` so far."""
    out = pg.psql(
        f"SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = '{database}'"
    )
    commits, rows = out.split("|")
    return int(commits), int(rows)


# What a transaction is for, from the tables and statements in it (first match wins): the profile
# below counts a round's transactions by these purposes.
PURPOSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lease: claim", ("reattest_leases", "SKIP LOCKED")),
    ("lease: complete", ("reattest_leases", "rounds + 1")),
    ("lease: other", ("reattest_leases",)),
    ("host verdict (nonce spent, audit, host record)", ("manager_audit", "'attest-host'")),
    ("VNF decision (nonce spent, audit, certificate)", ("manager_audit",)),
    ("nonce: issue", ("INSERT INTO manager_nonces",)),
    ("nonce: read", ("FROM manager_nonces",)),
    ("host record: read", ("FROM manager_hosts",)),
    ("VNF registration / enrollments: read", ("FROM manager_vnfs",)),
    ("VNF registration / enrollments: read", ("FROM manager_enrollments",)),
    ("TPM pin: read", ("FROM manager_host_tpm",)),
    ("CRL / revocation marker", ("pki_certificates",)),
)


@contextmanager
def statement_profile(pg: Any, database: str) -> Iterator[dict[str, list[str]]]:
    """Log every statement while the block runs (``log_statement = all``, each line
    tagged with its virtual transaction id), then fill the yielded dict: transaction id -> its
    statements in ``database``. Statement logging costs the database, not the VMs; a profiled round is not timed."""
    log_file = pg.root / "server.log"
    start = log_file.stat().st_size
    # ALTER SYSTEM + reload reaches the VM's open pooled sessions (ALTER DATABASE only new ones).
    pg.psql("ALTER SYSTEM SET log_statement = 'all'")
    pg.psql("ALTER SYSTEM SET log_line_prefix = '@@%v|%d|'")
    pg.psql("SELECT pg_reload_conf()")
    transactions: dict[str, list[str]] = {}
    try:
        yield transactions
    finally:
        pg.psql("ALTER SYSTEM RESET log_statement")
        pg.psql("ALTER SYSTEM RESET log_line_prefix")
        pg.psql("SELECT pg_reload_conf()")
    with log_file.open("rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            vxid, db, message = line[2:].split("|", 2)
            current = None
            if db != database or ": " not in message:
                continue
            kind, _, statement = message.partition(": ")[2].strip().partition(": ")
            if kind.startswith(("statement", "execute")):
                current = transactions.setdefault(vxid, [])
                current.append(statement)
            elif kind == "parameters" and vxid in transactions:  # the values of the last statement
                transactions[vxid][-1] += " -- " + statement
                current = transactions[vxid]
        elif current is not None and current:  # a statement's continuation line
            current[-1] += " " + line.strip()


def purposes(transactions: dict[str, list[str]]) -> dict[str, int]:
    """How many of ``transactions`` are for each purpose of :data:`PURPOSES` (else "other: ...")."""
    counts: dict[str, int] = {}
    for statements in transactions.values():
        text = " ".join(statements)
        if not text.strip():  # psycopg-pool's check of a connection it hands out
            label = "pool: connection check (an empty query)"
        else:
            found = next((name for name, needles in PURPOSES if all(n in text for n in needles)), None)
            label = found or "other: " + " ".join(text.split())[:80]
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def run() -> list[Result]:
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry
    from floodlight_trust.sgxsim import SimulatedPlatform

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # the simulated platforms' files: no fsync cost
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name, tempfile.TemporaryDirectory(
        prefix="bench-fleet-platforms-", dir=shm
    ) as platforms, postgres() as pg:
        tmp = Path(tmp_name)
        root_platform = SimulatedPlatform.create(tmp / "platform")
        ima = tmp / "ima.log"
        ima.write_bytes("".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in FILES.items()).encode())
        database = pg.create_database() if pg is not None else ""
        url = pg.url(database, password=False) if pg is not None else ""
        fleet = Fleet(tmp, url, {"FTRUST_DB_PASSWORD": pg.password} if pg is not None else {}, root_platform.directory)
        engine = "PostgreSQL" if pg is not None else "SQLite"
        if url:
            fleet.ftrust("vm", "migrate")
        fleet.ftrust("ca", "init")
        fleet.ftrust("vm", "admin-cert", "bench")
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        agents = ctx.Process(
            target=_fleet, args=(child, platforms, str(root_platform.directory), str(tmp / "state" / "ca"), str(ima), HOSTS),
            daemon=True,
        )  # fmt: skip
        agents.start()
        child.close()
        t_setup = time.perf_counter()
        fleet_url = parent.recv()
        if isinstance(fleet_url, dict):
            raise RuntimeError(f"fleet agents failed: {fleet_url['error']}")
        try:
            api = fleet.serve(interval=0)
            admin = fleet.admin(api)
            names = [f"h{i:05d}" for i in range(HOSTS)]

            def enroll(name: str) -> None:
                admin.add_host(name, f"{fleet_url}/{name}")
                admin.add_vnf(name, f"vnf-{name}")
                if not admin.enroll(name, f"vnf-{name}")["allowed"]:
                    raise RuntimeError(f"{name}: enrollment refused")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(enroll, names))
            setup_seconds = time.perf_counter() - t_setup
            # -- one replica, one round over every host ----------------------------------------------
            pid = fleet.procs[0].pid
            counters = _db_counters(pg, database) if pg is not None else (0, 0)
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            report = admin.reattest()
            seconds = time.perf_counter() - t0
            cpu = cpu_seconds(pid) - cpu0
            trusted = sum(1 for h in report["hosts"] if h["trusted"])
            if trusted != HOSTS:
                raise RuntimeError(f"only {trusted} of {HOSTS} hosts trusted in the round")
            work = f"{HOSTS} hosts, each: challenge its agent, judge its quote and IMA list, re-attest its VNF"
            results += [
                Result(f"round over {HOSTS} hosts, 1 replica ({engine})", seconds, "s", work=work),
                Result("round cost per host: VM CPU (1 replica)", cpu / HOSTS * 1000, "ms",
                       work="user + system CPU of the vm serve process during the round / hosts"),
                Result("round cost per host: wall time (1 replica)", seconds / HOSTS * 1000, "ms"),
            ]  # fmt: skip
            if pg is not None:
                after = _db_counters(pg, database)
                results += [
                    Result("database transactions per host per round", (after[0] - counters[0]) / HOSTS, "",
                           work="pg_stat_database xact_commit during the round / hosts (reads included)"),
                    Result("rows written per host per round", (after[1] - counters[1]) / HOSTS, "",
                           work="pg_stat_database tup_inserted + tup_updated + tup_deleted / hosts"),
                ]  # fmt: skip
                # The same round again with every statement logged: its transactions by purpose.
                with statement_profile(pg, database) as transactions:
                    admin.reattest()
                for label, count in purposes(transactions).items():
                    results.append(Result(f"  transactions per host-round: {label}", count / HOSTS, "",
                                          work="profiled round (log_statement = all), by what each is for"))  # fmt: skip
            admin.close()
            fleet.stop()
            # -- two replicas, the loop on a short interval: both saturated ---------------------------
            for _ in range(2):
                fleet.serve(interval=1)
            pids = [p.pid for p in fleet.procs]
            time.sleep(3)  # both replicas up and claiming
            done0, cpu0s, t0 = _completed(pg, database, tmp), [cpu_seconds(p) for p in pids], time.perf_counter()
            time.sleep(WINDOW)
            window = time.perf_counter() - t0
            cpus = [cpu_seconds(p) - c for p, c in zip(pids, cpu0s, strict=True)]
            attests = _completed(pg, database, tmp) - done0
            rate = attests / window
            results += [
                Result(f"hosts attested per second, 2 replicas ({engine})", rate, "1/s",
                       work=f"re-attestation loop of both replicas, every host always due, over {WINDOW:.0f} s"),
                Result("VM CPU per host-round (2 replicas)", sum(cpus) / max(1, attests) * 1000, "ms",
                       work="user + system CPU of both vm serve processes / host attestations in the window"),
                Result("share of the host-rounds by the busier replica", max(cpus) / max(sum(cpus), 1e-9), "",
                       work="CPU split between the two replicas (0.5: an even split)"),
                Result("fleet setup (platforms, registration, enrollment)", setup_seconds, "s"),
            ]  # fmt: skip
        finally:
            fleet.stop()
            try:
                parent.send("stop")
            except OSError:
                pass
            agents.join(30)
    load1, load5, _ = os.getloadavg()
    results.append(Result("load average (1 min) at the end; machine shared", load1, "", f"5 min {load5:.2f}"))
    return results


def _completed(pg: Any, database: str, tmp: Path) -> int:
    """Host-rounds completed so far (the lease table's counters): a measurement, read directly."""
    if pg is not None:
        return int(pg.psql("SELECT COALESCE(SUM(rounds), 0) FROM reattest_leases", database) or 0)
    import sqlite3

    con = sqlite3.connect(tmp / "state" / "ftrust.sqlite3", timeout=30)
    try:
        return int(con.execute("SELECT COALESCE(SUM(rounds), 0) FROM reattest_leases").fetchone()[0])
    finally:
        con.close()
