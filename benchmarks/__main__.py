from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks import Result


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    rows: list[tuple[str, Result]] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend((name.removeprefix("bench_"), r) for r in module.run())
    headers = ("suite", "measure", "value", "unit", "target", "ok")
    cells = [headers] + [
        (s, r.name, f"{r.value:.4g}", r.unit, r.target, "" if r.ok is None else ("yes" if r.ok else "NO"))
        for s, r in rows
    ]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(headers))]
    for i, c in enumerate(cells):
        print("  ".join(str(x).ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0 if all(r.ok is not False for _, r in rows) else 1


sys.exit(main(sys.argv[1:]))
