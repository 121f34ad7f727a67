"""The benchmark harness measures what it says (behaviour only: no figure is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import fresh_process, interleaved


def test_interleaved_rotates_the_order_and_runs_every_call() -> None:
    order: list[str] = []
    cases = {name: (lambda n=name: order.append(n)) for name in ("a", "b", "c")}
    medians = interleaved(cases, rounds=3, calls={"a": 2, "b": 1, "c": 1})
    assert set(medians) == {"a", "b", "c"} and all(v >= 0 for v in medians.values())
    # Round 0 starts with a, round 1 with b, round 2 with c; a runs twice per batch.
    assert order == ["a", "a", "b", "c", "b", "c", "a", "a", "c", "a", "a", "b"]


def test_interleaved_reports_cpu_time_apart_from_waiting() -> None:
    """A case that waits (here: sleeps) takes wall time but almost no CPU time; one that computes
    takes CPU time too. The CPU figures are what a loaded machine inflates least."""
    import time

    cpu: dict[str, float] = {}
    wall = interleaved(
        {"wait": lambda: time.sleep(0.005), "work": lambda: sum(range(20_000))}, rounds=3, calls=2, cpu=cpu
    )
    assert set(cpu) == {"wait", "work"}
    assert wall["wait"] >= 0.005 and cpu["wait"] < wall["wait"] / 2
    assert cpu["work"] > 0


def test_fresh_process_returns_the_result_and_its_own_peak_rss() -> None:
    doc = fresh_process("benchmarks.bench_ima:_allocate", 64)
    assert doc["result"] == 64
    assert doc["peak_rss_mib"] > 64  # the interpreter plus the 64 MiB it held


def test_a_fresh_process_does_not_report_its_parents_memory() -> None:
    # On Linux ru_maxrss of a child started by a larger process is the parent's peak: the harness
    # reads the child's own high-water mark instead.
    held = bytearray(160 * 2**20)
    held[::4096] = b"\x01" * len(held[::4096])
    doc = fresh_process("benchmarks.bench_ima:_allocate", 16)
    assert doc["result"] == 16
    assert 16 < doc["peak_rss_mib"] < 120, doc  # the interpreter and its 16 MiB, not this process's 160+
    del held


def test_vm_site_is_a_valid_config_and_policy(tmp_path: Path) -> None:
    """The one site the `vm serve` benchmarks write (benchmarks.fixtures.write_vm_site): the config
    loads under the VM's own checks with the settings asked for, and its policy compiles."""
    import hashlib
    import stat

    from benchmarks.fixtures import write_vm_site
    from floodlight_trust import config
    from floodlight_trust.policy_files import load_policy

    files = {"/usr/bin/agent": hashlib.sha256(b"a").digest()}
    sqlite = write_vm_site(tmp_path, b"image", files, storage_url="", platform_dir=tmp_path / "sim")
    assert stat.S_IMODE(sqlite.stat().st_mode) == 0o600
    cfg = config.load(sqlite)
    assert (cfg.get("vm", "port"), cfg.get("vm", "policy"), cfg.get("vm", "trust_simulated_sgx")) == (
        0,
        "site.policy",
        True,
    )
    assert cfg.state_dir == tmp_path / "state" and cfg.path("vm", "simulated_sgx_roots") == tmp_path / "sim"
    assert load_policy(tmp_path / "site.policy").enroll_rule("vnf-1") is not None

    pg = tmp_path / "pg"
    pg.mkdir()
    url = "postgresql://bench@127.0.0.1:5432/ftrust"
    cfg = config.load(
        write_vm_site(
            pg, b"image", files, storage_url=url, platform_dir=tmp_path, vm_settings="reattest_interval_seconds = 0\n"
        )
    )
    assert cfg.get("storage", "url") == url and cfg.get("vm", "reattest_interval_seconds") == 0


def test_start_vm_serve_returns_its_api_url_and_stop_processes_ends_it(tmp_path: Path) -> None:
    """The `vm serve` the benchmarks run, from write_vm_site's config: up, answering on the URL it
    printed, then stopped (and the list of processes emptied)."""
    import hashlib
    import ssl
    import urllib.request

    from benchmarks.bench_replicas import env
    from benchmarks.fixtures import start_vm_serve, stop_processes, write_vm_site
    from floodlight_trust.sgxsim import SimulatedPlatform
    from tests.support.cli import ftrust

    platform = SimulatedPlatform.create(tmp_path / "platform")
    files = {"/usr/bin/agent": hashlib.sha256(b"a").digest()}
    config = write_vm_site(tmp_path, b"image", files, storage_url="", platform_dir=platform.directory)
    r = ftrust("ca", "init", config=config, env=env())
    assert r.returncode == 0, r.stderr
    proc, url = start_vm_serve(config, env())
    procs = [proc]
    try:
        assert url.startswith("https://localhost:") and proc.poll() is None, url
        tls = ssl.create_default_context(cafile=str(tmp_path / "state" / "vm-tls" / "server.pem"))
        tls.check_hostname = False
        with pytest.raises(urllib.error.HTTPError) as refused:  # no client certificate: refused, but it answers
            urllib.request.urlopen(f"{url}/v1/admin/hosts", context=tls, timeout=30)
        assert refused.value.code in (401, 403)
    finally:
        stop_processes(procs, 30)
    assert procs == [] and proc.returncode is not None
