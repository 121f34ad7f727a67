"""Run one benchmark function in a fresh interpreter: ``python -m benchmarks._fresh module:function ARGS-JSON``.

Prints one JSON line: the function's (JSON-able) result and the process's peak RSS in MiB.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys


def peak_rss_mib() -> float:
    """This process's own peak resident set since it started (``VmHWM`` of /proc/self/status).

    Not ``ru_maxrss``: on Linux a process started by a larger one reports the parent's peak there
    (the high-water mark of the memory image its exec replaced), so a benchmark's child showed the
    benchmark's own RSS. ``ru_maxrss`` only where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str]) -> int:
    target, args = argv[0], json.loads(argv[1])
    module_name, _, function = target.partition(":")
    result = getattr(importlib.import_module(module_name), function)(*args)
    print(json.dumps({"result": result, "peak_rss_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
