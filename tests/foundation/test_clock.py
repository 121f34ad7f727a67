"""One place reads the wall clock: floodlight_trust/clock.py (the core takes times as arguments;
the shell asks clock.now()). Monotonic timers for deadlines and intervals are not the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import floodlight_trust
import policy_lang

_WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}
# These read the clock only when called without the time they convert (time.gmtime(record.created)
# formats a given time): name -> how many arguments come before the optional time.
_WALL_CLOCK_WITHOUT_TIME = {("time", "gmtime"): 0, ("time", "localtime"): 0, ("time", "ctime"): 0,
                            ("time", "asctime"): 0, ("time", "strftime"): 1}  # fmt: skip


def _wall_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            key = (name, node.func.attr)
            given = len(node.args) + len(node.keywords)
            if key in _WALL_CLOCK or (key in _WALL_CLOCK_WITHOUT_TIME and given <= _WALL_CLOCK_WITHOUT_TIME[key]):
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


def test_the_scan_sees_each_way_to_read_the_clock(tmp_path: Path) -> None:
    source = tmp_path / "reads.py"
    source.write_text(
        "import time\nfrom datetime import date, datetime\n"
        "datetime.now()\ndate.today()\ntime.time()\ntime.time_ns()\ntime.gmtime()\ntime.localtime()\n"
        'time.strftime("%Y")\n'
        # given times: formatting, not reading the clock
        'time.gmtime(0)\ntime.strftime("%Y", time.gmtime(0))\n',
        encoding="utf-8",
    )
    assert [r.split(":")[1] for r in _wall_clock_reads(source)] == [str(n) for n in range(3, 10)]
