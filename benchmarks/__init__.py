"""Benchmarks: `python -m benchmarks [NAME ...]` (or `make bench`) prints one table.

Each ``bench_*.py`` module defines ``run() -> list[Result]``; results say what was measured, the
figure, and the target from the issue that asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str  # what was measured
    value: float
    unit: str  # "s", "ms", "entries/s", "MB", ...
    target: str = ""  # e.g. "< 0.3 s"; empty when it is a reference figure
    ok: bool | None = None  # None when there is no target
