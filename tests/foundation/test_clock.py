"""One place reads the wall clock: floodlight_trust/clock.py (the core takes times as arguments;
the shell asks clock.now()). Monotonic timers for deadlines and intervals are not the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import floodlight_trust
import policy_lang

_WALL_CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"), ("time", "time")}


def _wall_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            if (name, node.func.attr) in _WALL_CLOCK:
                found.append(f"{path}:{node.lineno}: {name}.{node.func.attr}()")
    return found


def test_only_clock_py_reads_the_wall_clock() -> None:
    clock_py = Path(floodlight_trust.__file__).parent / "clock.py"
    reads = [
        r
        for pkg in (floodlight_trust, policy_lang)
        for path in sorted(Path(pkg.__file__).parent.rglob("*.py"))
        if path != clock_py
        for r in _wall_clock_reads(path)
    ]
    assert reads == []
    assert _wall_clock_reads(clock_py) != []  # the check sees clock.py's own datetime.now(UTC)
