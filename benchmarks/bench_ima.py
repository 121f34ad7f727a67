"""IMA appraisal speed (issue 4): a generated 100,000-entry ima-ng list, ASCII and binary.

Measures parse + template-hash check + PCR 10 replay of one bank (the list's own, sha1), the same
with both banks, an incremental round over 1,000 entries appended to 100,000, and peak memory.
Targets: >= 500,000 entries/s (binary no slower), incremental round < 5 ms. The machine's load
average is reported with them: on a shared machine, other processes slow these figures down.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
import tracemalloc
from collections.abc import Callable
from functools import partial

from benchmarks import Result
from floodlight_trust.evidence.ima import appraise_measurement_list, make_entry, serialize_ascii, serialize_binary

N = 100_000
NEW = 1_000


def _entries(n: int, start: int = 0) -> list:
    return [
        make_entry(f"/usr/lib/x86_64-linux-gnu/lib{i}-component.so.{i % 7}", hashlib.sha256(b"%d" % i).digest())
        for i in range(start, start + n)
    ]


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run() -> list[Result]:
    base, extra = _entries(N), _entries(NEW, N)
    results: list[Result] = []
    for kind, serialize in (("ascii", serialize_ascii), ("binary", serialize_binary)):
        data = serialize(base)
        grown = data + serialize(extra)
        one = _best(partial(appraise_measurement_list, data, banks=("sha1",)))
        results.append(
            Result(f"{kind} 100k ima-ng: parse+hash+replay sha1", N / one, "entries/s", ">= 500000", N / one >= 500_000)
        )
        two = _best(partial(appraise_measurement_list, data, banks=("sha1", "sha256")), repeat=3)
        results.append(Result(f"{kind} 100k ima-ng: both banks", N / two, "entries/s"))
        state = appraise_measurement_list(data, banks=("sha1",)).state
        inc = _best(partial(appraise_measurement_list, grown, state=state, banks=("sha1",)), repeat=20)
        results.append(Result(f"{kind} +1000 on 100k: incremental round", inc * 1000, "ms", "< 5", inc < 0.005))
        restored = type(state).from_json(state.to_json())
        cold = _best(partial(appraise_measurement_list, grown, state=restored, banks=("sha1",)), repeat=5)
        results.append(Result(f"{kind} +1000 on 100k: round from JSON state", cold * 1000, "ms"))
        gc.collect()
        tracemalloc.start()
        a = appraise_measurement_list(data, banks=("sha1",))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del a
        results.append(Result(f"{kind} 100k: peak memory (list {len(data) / 1e6:.1f} MB)", peak / 1e6, "MB"))
    results.append(Result("load average (1 min) at the end", os.getloadavg()[0], "processes"))
    return results
