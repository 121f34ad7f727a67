"""SGX DCAP: per-quote verification of the real Phala quote, beside dcap-qvl (Rust) in the same run.

Figures are the median of several rounds (the machine is shared). "cached" = collateral verified
once and cached (content hash + validity window) and the PCK certificate's issuance already
checked; "chain per quote" re-checks the PCK leaf signature and parses its SGX extension every
time; "cold" verifies all collateral every time, as dcap-qvl does.
"""

from __future__ import annotations

import calendar
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from benchmarks import Result
from floodlight_trust.clock import parse_time
from floodlight_trust.evidence import dcap

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sgx-dcap" / "phala"
AT = parse_time("2025-06-20T00:00:00Z")


def _per_call_ms(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n * 1000)
    return statistics.median(samples)


def run() -> list[Result]:
    quote = (DATA / "sgx_quote").read_bytes()
    collateral = dcap.load_collateral(DATA / "sgx_quote_collateral.json")
    anchor = dcap.TrustAnchor.intel()
    dcap.clear_cache()
    dcap.verify_quote(quote, collateral, anchor, at=AT)

    cached = _per_call_ms(lambda: dcap.verify_quote(quote, collateral, anchor, at=AT), 2000)

    def chain_each_time() -> None:
        dcap._pck_cache.clear()
        dcap.verify_quote(quote, collateral, anchor, at=AT)

    def cold() -> None:
        dcap.clear_cache()
        dcap.verify_quote(quote, collateral, anchor, at=AT)

    chain = _per_call_ms(chain_each_time, 1000)
    cold_ms = _per_call_ms(cold, 300)
    results = [
        Result("verify Phala quote, cached collateral + PCK", cached, "ms", "< 0.3 ms", cached < 0.3),
        Result("verify Phala quote, cached collateral, PCK chain per quote", chain, "ms"),
        Result("verify Phala quote, cold (all collateral re-verified)", cold_ms, "ms"),
    ]
    try:
        import dcap_qvl
    except ImportError:
        results.append(Result("dcap-qvl not installed (pip install .[bench])", float("nan"), "ms"))
        return results
    qvl_collateral = dcap_qvl.QuoteCollateralV3.from_json((DATA / "sgx_quote_collateral.json").read_text())
    now = calendar.timegm(AT.utctimetuple())
    status = dcap_qvl.verify(quote, qvl_collateral, now).status
    assert status == "ConfigurationAndSWHardeningNeeded", status
    qvl = _per_call_ms(lambda: dcap_qvl.verify(quote, qvl_collateral, now), 1000)
    results.append(Result(f"dcap-qvl {metadata.version('dcap-qvl')} verify, same quote", qvl, "ms"))
    return results
