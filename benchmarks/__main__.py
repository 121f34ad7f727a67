from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks import Result, load_average


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = load_average()
    rows: list[tuple[str, Result]] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ... (load average {load_average()})", file=sys.stderr, flush=True)
        rows.extend((name.removeprefix("bench_"), r) for r in module.run())
    print(f"python -m benchmarks {' '.join(argv)}".rstrip())
    print(f"started {started}; load average (1, 5, 15 min) before {load_before}, after {load_average()}")
    print("figures are medians of interleaved rounds unless a row says otherwise; [quoted] anchors are constants")
    print("measured quietly by issue 15: ratios against them fall when this machine is loaded")
    print()
    headers = ("suite", "measure", "value", "unit", "target", "ok")
    cells = [headers] + [
        (s, r.name, f"{r.value:.4g}", r.unit, r.target, "" if r.ok is None else ("yes" if r.ok else "NO"))
        for s, r in rows
    ]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(headers))]
    indent = " " * (widths[0] + 2)
    for i, c in enumerate(cells):
        print("  ".join(str(x).ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
            continue
        r = rows[i - 1][1]
        if r.work:
            print(f"{indent}work: {r.work}")
        if r.anchor:
            print(f"{indent}anchor: {r.anchor}")
    return 0 if all(r.ok is not False for _, r in rows) else 1


sys.exit(main(sys.argv[1:]))
