"""SGX DCAP: per-quote verification of the real Phala quote, side by side with dcap-qvl (Rust) in
the same run (the bench extra: ``pip install -e .[bench]``).

Like for like with dcap-qvl is "cold": every call verifies all collateral (TCB info and QE identity
signatures and their signing chain, both CRLs, the PCK CA), the PCK chain, the QE report, the quote
signature, and parses the TCB info, as ``dcap_qvl.verify`` does on every call. "Cached" is the VM's
steady state, on its own line: collateral verified once and cached by content hash, anchor and the
signers in force at the verification time, the PCK leaf's issuance and the platform's QE report
signature (the same in all its quotes) checked once; the quote's own signature every call. The cases run in
interleaved rounds; figures are medians.
"""

from __future__ import annotations

import calendar
from importlib import metadata
from pathlib import Path

from benchmarks import Result, interleaved, ratio
from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.clock import parse_time
from floodlight_trust.evidence import dcap

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sgx-dcap" / "phala"
AT = parse_time("2025-06-20T00:00:00Z")
ROUNDS = 7


def run() -> list[Result]:
    quote = (DATA / "sgx_quote").read_bytes()
    collateral = load_collateral(DATA / "sgx_quote_collateral.json")
    anchor = dcap.TrustAnchor.intel()
    dcap.clear_cache()
    dcap.verify_quote(quote, collateral, anchor, at=AT)

    def cached() -> None:
        dcap.verify_quote(quote, collateral, anchor, at=AT)

    def chain_each_time() -> None:
        dcap._pck_cache.clear()
        dcap.verify_quote(quote, collateral, anchor, at=AT)

    def cold() -> None:
        dcap.clear_cache()
        dcap.verify_quote(quote, collateral, anchor, at=AT)

    cases = {"cold": cold, "cached": cached, "chain": chain_each_time}
    calls = {"cold": 200, "cached": 2000, "chain": 500}
    qvl_label = ""
    try:
        import dcap_qvl

        qvl_collateral = dcap_qvl.QuoteCollateralV3.from_json((DATA / "sgx_quote_collateral.json").read_text())
        now = calendar.timegm(AT.utctimetuple())
        status = dcap_qvl.verify(quote, qvl_collateral, now).status
        assert status == "ConfigurationAndSWHardeningNeeded", status
        ours = dcap.verify_quote(quote, collateral, anchor, at=AT).claims.tcb_status.value
        assert ours == status, (ours, status)  # the same verdict, or the comparison means nothing

        def qvl() -> None:
            dcap_qvl.verify(quote, qvl_collateral, now)

        cases["qvl"] = qvl
        calls["qvl"] = 500
        qvl_label = f"dcap-qvl {metadata.version('dcap-qvl')}"
    except ImportError:
        pass
    cpu: dict[str, float] = {}
    t = interleaved(cases, rounds=ROUNDS, calls=calls, cpu=cpu)
    ms = {k: v * 1000 for k, v in t.items()}
    # The same ratios in CPU time (this thread's): load inflates wall time by the waits for a core.
    cpu_slower = cpu["cold"] / cpu["qvl"] if qvl_label else float("nan")
    cpu_faster = ratio(cpu["cached"], cpu.get("qvl", float("nan")))
    qvl_ms = ms.get("qvl", float("nan"))
    slower = ms["cold"] / qvl_ms if qvl_label else float("nan")
    faster = ratio(ms["cached"], qvl_ms)
    results = [
        Result(
            "verify Phala quote, cold (like for like with dcap-qvl)",
            ms["cold"],
            "ms",
            "<= 1.5x dcap-qvl",
            slower <= 1.5 if qvl_label else None,
            work="all collateral verified every call: TCB info + QE identity signatures and signing chain, "
            "root and PCK CRLs, PCK CA and leaf, QE report, quote signature, TCB info parsed, TCB status",
            anchor=f"{qvl_label} {qvl_ms:.3f} ms (measured in this run): {slower:.2f}x the time "
            f"({cpu_slower:.2f}x in CPU time)"
            if qvl_label
            else "dcap-qvl not installed (pip install -e .[bench]): no ratio",
        ),
        Result(
            "verify Phala quote, cached collateral + PCK (the VM's steady state)",
            ms["cached"],
            "ms",
            ">= 4x faster than dcap-qvl",
            faster >= 4 if qvl_label else None,
            work="collateral, PCK leaf and the platform's QE report signature verified once and cached "
            "(by content); per call: quote parse, validity windows and CRL lookups at the verification time, "
            "QE report binding, the quote signature (ECDSA), QE identity, TCB status",
            anchor=f"{qvl_label} {qvl_ms:.3f} ms (cold, its only mode): {faster:.2f}x faster "
            f"({cpu_faster:.2f}x in CPU time)"
            if qvl_label
            else "dcap-qvl not installed: no ratio",
        ),
        Result(
            "verify Phala quote, cached collateral, PCK chain per quote",
            ms["chain"],
            "ms",
            work="as cached, plus the PCK leaf's signature by its CA, its SGX extension and the QE report "
            "signature every call",
        ),
    ]
    if qvl_label:
        results.append(
            Result(f"{qvl_label} verify, same quote and collateral", qvl_ms, "ms", work="dcap_qvl.verify (Rust), cold")
        )
    return results
