"""Keylime's IMA appraisal on the benchmark's list, for the side-by-side rows of bench_ima.

Run by Keylime's own interpreter with a Keylime source tree on PYTHONPATH (configured by
FTRUST_BENCH_KEYLIME=PYTHON:SOURCE; see docs/benchmarks.md), never imported by floodlight-trust: it
imports only Keylime and the standard library. One round per process: read the runtime policy as
the verifier stores it (JSON text) and the list, then ``ima.process_measurement_list`` with PCR 10
replayed in the sha256 bank and checked against the expected value. Prints one JSON line.

    python keylime_ima.py DIRECTORY EXPECTED_SHA256_PCR10
"""

import json
import logging
import resource
import sys
import time


def _peak_rss_mib() -> float:
    """VmHWM, as benchmarks/_fresh.py measures ours (ru_maxrss would report the benchmark's own peak:
    on Linux a child started by a larger process inherits its high-water mark)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    directory, pcr = sys.argv[1], sys.argv[2]
    logging.disable(logging.CRITICAL)
    from keylime.common.algorithms import Hash
    from keylime.ima import ima

    t0 = time.perf_counter()
    with open(f"{directory}/rp.json", encoding="utf-8") as fh:
        policy = json.loads(fh.read())
    with open(f"{directory}/ima.log", encoding="utf-8") as fh:
        lines = fh.read().splitlines(keepends=True)
    running, failure = ima.process_measurement_list(None, lines, policy, pcrval=pcr, hash_alg=Hash.SHA256)
    seconds = time.perf_counter() - t0
    if running != pcr or failure.highest_severity:
        print(
            json.dumps({"error": f"Keylime did not accept the list (PCR {running}, failure {failure.get_event_ids()})"})
        )
        return 1
    rss = _peak_rss_mib()
    print(json.dumps({"seconds": seconds, "entries": len(lines), "peak_rss_mib": rss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
