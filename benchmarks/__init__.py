"""Benchmarks: `python -m benchmarks [NAME ...]` (or `make bench`) prints one table.

Each ``bench_*.py`` module defines ``run() -> list[Result]``; a result says what was measured, the
work that is in the figure, the anchor it is compared with (and the ratio), and the target from the
issue that asked for it.

Honesty rules (docs/benchmarks.md): a figure compared with an anchor measures the anchor's work;
timings are medians of interleaved rounds (the cases of one comparison alternate, so a burst of
load on the shared machine hits all of them); memory is the peak RSS of a fresh process; the load
average is printed with the table. Anchor figures that cannot be re-run here are quoted constants
(``benchmarks.anchors``), labelled as such in the table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Result:
    name: str  # what was measured
    value: float
    unit: str  # "s", "ms", "entries/s", "MiB", ...
    target: str = ""  # e.g. "< 0.3 s"; empty when it is a reference figure
    ok: bool | None = None  # None when there is no target
    work: str = ""  # the work inside the figure, in words
    anchor: str = ""  # the anchor figure it is compared with, and the ratio


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def interleaved(
    cases: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    calls: int | Mapping[str, int] = 1,
    before: Callable[[], object] | None = None,
    first_round: int = 0,
    cpu: dict[str, float] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each case over ``rounds`` interleaved rounds.

    Each round runs every case once (``calls`` calls each, timed together), in an order that rotates
    from round to round, so that load on the machine falls on every case alike. ``before`` runs
    before each timed batch, outside the clock; ``first_round`` continues a rotation (a caller that
    interleaves cases of its own between rounds calls this once per round). ``cpu``, when given, is
    filled with the median CPU seconds per call of this thread (``time.thread_time``) of each case:
    on a loaded machine the wall time also counts the time spent waiting for a core.
    """
    names = list(cases)
    samples: dict[str, list[float]] = {n: [] for n in names}
    cpu_samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(first_round, first_round + rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            n = calls if isinstance(calls, int) else calls[name]
            fn = cases[name]
            if before is not None:
                before()
            c0, t0 = time.thread_time(), time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
            cpu_samples[name].append((time.thread_time() - c0) / n)
    if cpu is not None:
        cpu.update({n: statistics.median(s) for n, s in cpu_samples.items()})
    return {n: statistics.median(s) for n, s in samples.items()}


def median_of(fn: Callable[[], float], rounds: int) -> float:
    """Median of ``rounds`` values returned by ``fn`` (a function that times one round itself)."""
    return statistics.median(fn() for _ in range(rounds))


def fresh_process(function: str, *args: Any, timeout: float = 600) -> dict[str, Any]:
    """Run ``module:function(*args)`` (JSON-able arguments and result) in a fresh interpreter.

    Returns ``{"result": ..., "peak_rss_mib": ...}``: the peak resident set size of that process
    (``VmHWM``, not ``ru_maxrss``, which a child inherits from a larger parent on Linux), interpreter
    and imports included, as one measures any other verifier's RSS.
    """
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._fresh", function, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh process {function} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def ratio(ours: float, theirs: float) -> float:
    """How many times faster ours is (theirs / ours); ``nan`` when either is missing."""
    if not ours or ours != ours or theirs != theirs:
        return float("nan")
    return theirs / ours


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.3g} ms" if seconds < 0.01 else f"{seconds * 1000:,.0f} ms"


def rows_ok(results: Sequence[Result]) -> bool:
    return all(r.ok is not False for r in results)
