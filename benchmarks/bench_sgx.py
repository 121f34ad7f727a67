"""SGX DCAP: per-quote verification of the real Phala quote, side by side with dcap-qvl (Rust) in
the same run (the bench extra: ``pip install -e .[bench]``).

Like for like with dcap-qvl is "cold": every call makes the checks ``dcap_qvl.verify`` makes on
every call (read from its source and held to it case by case in
tests/evidence/sgx/test_dcap_qvl_parity.py): the TCB info and QE identity signatures and their
signing certificate, the root CA CRL (signed by the root; revoking neither the root, the signing
certificate nor the PCK CA) and the PCK CRL (signed by the PCK CA), the PCK CA and leaf (signatures,
validity, basicConstraints by role, extended key usage, critical extensions, cRLSign of the CRL
issuer), the QE report signature and binding, the quote signature, the QE identity and the TCB
level. Each distinct signature is checked once per call (9; dcap-qvl checks the TCB signing
certificate and the root CA CRL once per chain it validates). Neither checks the pinned root's
self-signature (the root is trusted for its bytes). Beyond dcap-qvl, at no measurable cost: the
root's own validity window, each CRL's thisUpdate, and zeros in the second half of the QE report
data. "Cached" is the VM's
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
            work="dcap-qvl's checks on every call: TCB info + QE identity signatures and their signing certificate "
            "(issued by the root, an end entity, not revoked), root CA CRL (root-signed; root, signer and PCK CA "
            "not revoked) and PCK CRL, PCK CA and leaf (signatures, validity, basicConstraints, EKU, critical "
            "extensions, cRLSign), QE report signature and binding, quote signature, TCB info + QE identity "
            "parsed, TCB status; 9 signatures, each distinct one once. Beyond dcap-qvl: root validity window, "
            "CRL thisUpdate, QE report data zero-padded",
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
