"""The benchmark harness measures what it says (behaviour only: no figure is asserted)."""

from __future__ import annotations

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
