"""Enrollments per second through the VM's HTTPS API with the sim backend, and per-enrollment latency.

One enrollment = ask a nonce, build the enclave's evidence (a simulated DCAP quote binding the nonce
and the enclave key), POST it, verify (DCAP + binding + policy), issue the certificate and write the
certificate, enrollment and audit records in one (group-committed, fsync'ed) transaction, install
the certificate in the enclave. Client threads keep TLS sessions alive, as agents do. Issue 7's
target: >= 200/s.

The agents' side (quote generation, TLS client, schema checks, installing) runs in a separate
process, as agents run on other machines: one CPython process runs one thread at a time, so a load
generator inside the VM's process takes its CPU from the VM. The in-process figure is reported too.

The VM CPU per enrollment is the median of ROUNDS timed rounds of ENROLLMENTS enrollments each
(getrusage of the VM's process between markers the agents' process sends), so one burst of load on
the shared machine does not decide it; every round's figure is printed in the row's work line.
Issue 15's target: <= 1.5 ms (docs/benchmarks.md has the breakdown of where it goes).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import Result
from benchmarks.fixtures import sim_policy_text

ENROLLMENTS = 400
ROUNDS = 3
FRESH_ENROLLMENTS = 200
CLIENTS = 8
IMAGE = b"benchmark VNF image"
FILES = {"boot_aggregate": hashlib.sha256(b"boot").digest(), "/usr/bin/agent": hashlib.sha256(b"a").digest()}


def _load(
    platform_dir: str,
    ima_path: str,
    api_url: str,
    tls_cert: str,
    ca_dir: str,
    prefix: str,
    *,
    rounds: int = 1,
    on_mark: Any = None,
    fresh: bool = False,
    count: int = ENROLLMENTS,
) -> dict[str, Any]:
    """The agents' side: attest the host, then ``rounds`` times enroll ENROLLMENTS VNFs from CLIENTS
    threads. ``on_mark("start"|"stop")`` is called around each timed round (the parent then reads
    its CPU time). ``fresh``: each enrollment on a new TLS connection (full handshake: an agent whose
    kept-alive connection timed out since its last enrollment), ``count`` enrollments per round.
    Returns the median round's elapsed time and latencies, and every round's elapsed time."""
    from floodlight_trust.agent.backends.sim import SimBackend
    from floodlight_trust.agent.imasource import ImaSource
    from floodlight_trust.agent.service import Agent, enroll_via_vm
    from floodlight_trust.manager.client import VmClient
    from floodlight_trust.pki.ca import load_ca_certificate
    from floodlight_trust.sgxsim import SimulatedPlatform

    # In-process enclave runtimes pinning the VM CA (the enclaves' work, as in a deployment).
    backend = SimBackend(SimulatedPlatform.load(Path(platform_dir)), vm_ca=load_ca_certificate(Path(ca_dir)))
    agent = Agent("bench-host", backend, ImaSource(None, Path(ima_path)))
    batches = [[f"vnf-{prefix}{r}-{i:04d}" for i in range(count)] for r in range(rounds)]
    warm = [f"vnf-{prefix}warm-{i}" for i in range(CLIENTS)]
    for n in [n for batch in batches for n in batch] + warm:
        backend.add_enclave(n, IMAGE)
    local = threading.local()

    def client() -> VmClient:
        if not hasattr(local, "vm"):
            local.vm = VmClient(api_url, server_certificate=tls_cert)
        return local.vm  # type: ignore[no-any-return]

    assert client().submit_host_evidence(agent.host_evidence(client().nonce("host", agent.host)))["trusted"]
    latencies: list[float] = []

    def one(n: str) -> None:
        t0 = time.perf_counter()
        if fresh:  # both requests of the enrollment on one new connection, as one VmClient sends them
            vm = VmClient(api_url, server_certificate=tls_cert)
            try:
                doc = enroll_via_vm(agent, vm, n, attest_host=False)
            finally:
                vm.close()
        else:
            doc = enroll_via_vm(agent, client(), n, attest_host=False)
        latencies.append(time.perf_counter() - t0)
        if not doc["allowed"]:
            raise RuntimeError(f"enrollment refused: {doc['reasons']}")

    elapsed: list[float] = []
    every: list[list[float]] = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, warm))  # TLS sessions and caches warm, outside the clock
        for batch in batches:
            latencies.clear()
            if on_mark is not None:
                on_mark("start")
            start = time.perf_counter()
            list(pool.map(one, batch))
            elapsed.append(time.perf_counter() - start)
            if on_mark is not None:
                on_mark("stop")
            every.append(list(latencies))
    # The figures of the median round (by rate) stand for the run.
    median = sorted(range(len(elapsed)), key=lambda i: elapsed[i])[len(elapsed) // 2]
    return {"elapsed": elapsed[median], "latencies": every[median], "rounds": elapsed}


def _handlers_only(args: tuple[str, ...], app: Any, count: int) -> float:
    """CPU ms (this thread) per enrollment of the VM API's two handlers called in one thread: the
    same two requests' bodies through ``JsonApp.handle`` (routing, JSON, schema checks, verification,
    judging, issue, records and their fsync'ed commit: alone, no concurrent write shares it), without
    TLS, HTTP framing or the hop to a handler thread. The agents' work (quoting) is outside the clock."""
    import json

    from floodlight_trust.agent.backends.sim import SimBackend
    from floodlight_trust.agent.imasource import ImaSource
    from floodlight_trust.agent.service import Agent
    from floodlight_trust.http.server import Request
    from floodlight_trust.pki.ca import load_ca_certificate
    from floodlight_trust.sgxsim import SimulatedPlatform

    platform_dir, ima_path, _url, _tls, ca_dir = args
    backend = SimBackend(SimulatedPlatform.load(Path(platform_dir)), vm_ca=load_ca_certificate(Path(ca_dir)))
    agent = Agent("bench-host", backend, ImaSource(None, Path(ima_path)))
    names = [f"vnf-h{i:04d}" for i in range(count + CLIENTS)]
    for n in names:
        backend.add_enclave(n, IMAGE)
    headers = {"content-type": "application/json"}

    def post(path: str, doc: dict[str, Any]) -> Any:
        body = json.dumps(doc, separators=(",", ":")).encode()
        return app.handle(Request(method="POST", path=path, headers=headers, body=body, remote="127.0.0.1"))

    cpu = 0.0
    for i, n in enumerate(names):
        t0 = time.thread_time()
        answer = post("/v1/nonces", {"purpose": "enclave", "host": "bench-host", "vnf": n})
        t1 = time.thread_time()
        nonce = bytes.fromhex(json.loads(answer.body)["nonce"])
        evidence = agent.enclave_evidence(n, nonce)
        t2 = time.thread_time()
        answer = post("/v1/enroll", evidence)
        t3 = time.thread_time()
        if answer.status != 200 or not json.loads(answer.body)["allowed"]:
            raise RuntimeError(f"enrollment refused: {answer.status} {answer.body[:300]!r}")
        if i >= CLIENTS:  # the first few warm caches, outside the figure
            cpu += (t1 - t0) + (t3 - t2)
    return cpu / count * 1000


def _child(conn: Any, fresh: bool, rounds: int, count: int, *args: str) -> None:
    try:
        conn.send(_load(*args, rounds=rounds, on_mark=conn.send, fresh=fresh, count=count))
    except BaseException as e:  # reported to the parent, which fails the benchmark
        conn.send({"error": repr(e)})
    finally:
        conn.close()


def _measure(args: tuple[str, ...], prefix: str, *, fresh: bool, rounds: int, count: int) -> tuple[Any, list[Any]]:
    """Run the agents' side in another process; the VM's (this process's) user and system CPU ms per
    enrollment in each of its rounds, and its result document."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fresh, rounds, count, *args, prefix), daemon=True)
    proc.start()
    child.close()
    cpu: list[tuple[float, float]] = []
    doc = parent.recv()
    while doc == "start":
        before = resource.getrusage(resource.RUSAGE_SELF)
        doc = parent.recv()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(
            (
                (after.ru_utime - before.ru_utime) / count * 1000,
                (after.ru_stime - before.ru_stime) / count * 1000,
            )
        )
        if doc == "stop":
            doc = parent.recv()
    proc.join(timeout=30)
    return doc, cpu


def _rounds_text(cpu: list[tuple[float, float]]) -> str:
    return ", ".join(f"{u + s:.2f} ({u:.2f} user + {s:.2f} sys)" for u, s in cpu)


def _results(label: str, doc: dict[str, Any], *, target: bool, count: int = ENROLLMENTS) -> list[Result]:
    if "error" in doc:
        raise RuntimeError(f"benchmark load failed: {doc['error']}")
    rate = count / doc["elapsed"]
    lat = sorted(doc["latencies"])
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    rounds = len(doc.get("rounds", [doc["elapsed"]]))
    work = f"{count} enrollments over HTTPS (nonce, sim quote, POST, verify, issue, record, install), " + (
        f"the median of {rounds} rounds after a warm-up" if rounds > 1 else "one run after a warm-up"
    )
    return [
        Result(f"enrollments/s ({CLIENTS} clients, {label})", rate, "1/s", ">= 200", rate >= 200, work=work)
        if target
        else Result(f"enrollments/s ({CLIENTS} clients, {label})", rate, "1/s", work=work),
        Result(f"enrollment latency p50 ({label})", p50, "ms", work="client-side, nonce request to installed"),
        Result(f"enrollment latency p99 ({label})", p99, "ms"),
    ]


def run() -> list[Result]:
    from floodlight_trust import clock
    from floodlight_trust.config import from_mapping
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry
    from floodlight_trust.manager.service import build_service
    from floodlight_trust.pki.ca import CertificateAuthority
    from floodlight_trust.secrets import Secret
    from floodlight_trust.sgxsim import SimulatedPlatform
    from floodlight_trust.storage.sqlite import SqliteStorage
    from policy_lang import compile_policy_text

    policy = compile_policy_text(sim_policy_text(IMAGE, FILES))
    password = Secret("benchmark password", "bench")
    results: list[Result] = []
    cpu_ms = float("nan")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        platform = SimulatedPlatform.create(tmp / "platform")
        # The benchmark's VNF names are registered by their enroll rule on first enrollment (opted in).
        vm_settings = {"port": 0, "crl_port": 0, "self_registering_enroll_rules": ["r"]}
        config = from_mapping({"state": {"dir": str(tmp / "state")}, "vm": vm_settings})
        db = SqliteStorage(config.state_dir / "ftrust.sqlite3")
        CertificateAuthority.init(
            config.state_path("ca", "dir"),
            password,
            subject="CN=bench CA",
            crl_url="http://127.0.0.1:8990/crl.der",
            ocsp_url="http://127.0.0.1:8990/ocsp",
            at=clock.now(),
            records=db.certificates(),
        )
        service = build_service(
            config, password=password, policy=policy, anchors=[platform.anchor()], threads=16
        ).start()
        service.vm.storage.hosts.add("bench-host", "http://127.0.0.1:9", None, at=clock.now())  # as an admin would
        ima = tmp / "ima.log"
        ima.write_bytes("".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in FILES.items()).encode())
        args = (
            str(platform.directory),
            str(ima),
            service.api_url,
            str(service.tls_certificate),
            str(config.state_path("ca", "dir")),
        )
        try:
            # The VM's CPU (this process: its service threads) during each round of enrollments.
            doc, cpu = _measure(args, "p", fresh=False, rounds=ROUNDS, count=ENROLLMENTS)
            if cpu:
                cpu_ms = statistics.median(u + s for u, s in cpu)
            # The target is the deployment's shape: agents run on other machines (here: another
            # process). With the agents' quoting and TLS inside the VM's own process both share one
            # interpreter lock; that figure is kept as a reference, not judged against the target.
            results += _results("agents in another process", doc, target=True)
            results.append(
                Result(
                    "VM CPU per enrollment (getrusage, VM process)",
                    cpu_ms,
                    "ms",
                    "<= 1.5 ms",
                    cpu_ms <= 1.5,
                    work="user + system CPU of the VM's process during the timed enrollments / enrollments "
                    f"(median of {len(cpu)} rounds; each: {_rounds_text(cpu)} ms): "
                    "TLS, HTTP, schema checks, DCAP (sim root) + binding + policy, certificate issue, "
                    "one fsync'ed transaction per group commit",
                )
            )
            # An agent enrolls its VNFs at start and then every re-attestation interval: its kept-alive
            # connection has timed out (vm.timeouts) by then, so a real enrollment often includes a
            # full TLS handshake. Reported beside the target row, not in it.
            fresh_doc, fresh_cpu = _measure(args, "f", fresh=True, rounds=1, count=FRESH_ENROLLMENTS)
            if "error" in fresh_doc:
                raise RuntimeError(f"benchmark load failed: {fresh_doc['error']}")
            results.append(
                Result(
                    "VM CPU per enrollment on a new TLS connection each (handshake included)",
                    statistics.median(u + s for u, s in fresh_cpu) if fresh_cpu else float("nan"),
                    "ms",
                    work=f"as the row above, {FRESH_ENROLLMENTS} enrollments, each on a new connection "
                    f"(TLS 1.3 full handshake, P-256; {_rounds_text(fresh_cpu)} ms)",
                )
            )
            # Where the target row's CPU goes: the same two handlers without the server around them.
            results.append(
                Result(
                    "VM CPU per enrollment, the API's handlers alone (no TLS/HTTP server)",
                    _handlers_only(args, service.api.app, FRESH_ENROLLMENTS),
                    "ms",
                    work=f"{FRESH_ENROLLMENTS} enrollments, one at a time in one thread: the two requests' "
                    "bodies through JsonApp.handle (routing, JSON, schema, DCAP + binding + policy, issue, "
                    "records, each enrollment's own fsync'ed commit); no TLS, HTTP framing or thread hop; "
                    "thread CPU time",
                )
            )
            results += _results("agents in the VM's process", _load(*args, "t"), target=False)
        finally:
            service.stop()
    load1, load5, _ = os.getloadavg()
    results.append(Result("load average (1 min) at the end; machine shared", load1, "", f"5 min {load5:.2f}"))
    return results
