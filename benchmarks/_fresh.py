"""Run one benchmark function in a fresh interpreter: ``python -m benchmarks._fresh module:function ARGS-JSON``.

Prints one JSON line: the function's (JSON-able) result and the process's peak RSS in MiB.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys


def main(argv: list[str]) -> int:
    target, args = argv[0], json.loads(argv[1])
    module_name, _, function = target.partition(":")
    result = getattr(importlib.import_module(module_name), function)(*args)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"result": result, "peak_rss_mib": peak_kib / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
