"""IMA appraisal on the anchor's work, side by side with Keylime 7.14's figures (issue 15).

The anchor work is Keylime's: a 100,000-entry ima-ng ASCII list parsed, every template hash
recomputed, PCR 10 replayed into the sha256 bank and every entry judged against a 100,000-entry
Keylime runtime policy. The headline row runs it through the Verification Manager's own entry point
(``HostAttestation.appraise_ima``, what every host attestation calls), which does more than the
anchor: it checks the sha1 template hashes and replays both the sha1 and sha256 banks. Keylime
cannot be re-run here, so its figures are quoted constants (``benchmarks.anchors``).

Memory is the peak RSS of a fresh process that loads the policy, reads the list and appraises it
(interpreter and imports included, as Keylime's figure). Set FTRUST_BENCH_1M=1 for the 1,000,000-entry
rows (about a minute and 1 GiB).

Keylime side by side: with FTRUST_BENCH_KEYLIME=PYTHON:SOURCE (an interpreter with Keylime's
dependencies and a Keylime source tree, kept outside this repository), every round also runs
``benchmarks/keylime_ima.py`` in a fresh Keylime process on the same files, and the ratios use that
figure, measured in the same run, instead of the quoted constants.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import Result, fresh_process, interleaved, load_average, ratio
from benchmarks.anchors import (
    KEYLIME_IMA_100K_MS,
    KEYLIME_IMA_US_PER_ENTRY,
    KEYLIME_RSS_1M_MIB,
    KEYLIME_RSS_100K_MIB,
)
from benchmarks.fixtures import binary_list, ima_lines, write_ima_setup

N = 100_000
NEW = 1_000
ROUNDS = 5


def _vm(policy: Any, tmp: Path) -> Any:
    """A Verification Manager around ``policy`` (no CA, no agents: only the appraisal is called)."""
    from floodlight_trust.manager.workflow import VerificationManager
    from floodlight_trust.storage.sqlite import SqliteStorage

    return VerificationManager(storage=SqliteStorage(tmp / "state.sqlite3"), ca=None, policy=policy, anchors=[])


def _appraise_via_vm(vm: Any, data: bytes) -> int:
    from floodlight_trust import clock
    from floodlight_trust.reasons import denials

    _, entries, reasons = vm.host_attestation.appraise_ima(None, "bench", "h", data, clock.now())
    if denials(reasons):
        raise RuntimeError(f"the generated list is not trusted: {reasons[:3]}")
    return int(entries)


def _sha256_bank_library(policy: Any, data: bytes) -> None:
    """The anchor's work through the library: sha256 bank only, then the host policy."""
    from floodlight_trust import clock
    from floodlight_trust.claims import ClaimSet
    from floodlight_trust.evidence.ima import appraise_measurement_list

    appraisal = appraise_measurement_list(data, banks=("sha256",))
    decision, _ = policy.evaluate_host_round("h", ClaimSet(verified_at=clock.now(), ima=appraisal.claims))
    if not (appraisal.ok and decision.allowed):
        raise RuntimeError("the generated list is not trusted")


def fresh_appraisal(directory: str, log: str) -> dict[str, float]:
    """In a fresh process (``benchmarks._fresh``): load the policy, read the list, appraise it through
    the VM's entry point. Returns seconds and entries; the caller gets the process's peak RSS."""
    from floodlight_trust.policy_files import load_policy

    root = Path(directory)
    t0 = time.perf_counter()
    policy = load_policy(root / "host.policy")
    data = (root / log).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        entries = _appraise_via_vm(_vm(policy, Path(tmp)), data)
    return {"seconds": time.perf_counter() - t0, "entries": entries}


def _keylime() -> tuple[str, str] | None:
    """(interpreter, source tree) of the Keylime to run side by side, from FTRUST_BENCH_KEYLIME."""
    spec = os.environ.get("FTRUST_BENCH_KEYLIME", "")
    python, sep, source = spec.partition(":")
    return (python, source) if sep and python and source else None


def _run_keylime(keylime: tuple[str, str], directory: Path, pcr: str) -> dict[str, float]:
    python, source = keylime
    stub = directory / "keylime-stubs"
    stub.mkdir(exist_ok=True)
    # keylime.signing imports the system's GPG bindings, which the IMA appraisal never uses.
    (stub / "gpg.py").write_text("# stand-in: Keylime's IMA appraisal does not use GPG\n")
    proc = subprocess.run(
        [python, str(Path(__file__).with_name("keylime_ima.py")), str(directory), pcr],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{source}{os.pathsep}{stub}", "PATH": os.environ.get("PATH", "")},
        cwd=directory,
        timeout=600,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    doc: dict[str, float] = json.loads(lines[-1]) if lines else {"error": proc.stderr[-1000:]}  # type: ignore[dict-item]
    if proc.returncode != 0 or "error" in doc:
        raise RuntimeError(f"Keylime side by side failed: {doc.get('error') or proc.stderr[-1000:]}")
    return doc


def _e2e_rows(tmp: Path) -> list[Result]:
    from floodlight_trust.policy_files import load_policy

    files = write_ima_setup(tmp / "100k", N)
    data = Path(files["log"]).read_bytes()
    binary = binary_list(N)
    policy = load_policy(files["policy"])
    vm = _vm(policy, tmp)
    reload_vm = _vm(policy, tmp / "100k")

    def vm_with_policy_load() -> None:
        reload_vm.policy = load_policy(files["policy"])  # unchanged policy, loaded again
        _appraise_via_vm(reload_vm, data)

    assert _appraise_via_vm(vm, data) == N + 1 and _appraise_via_vm(vm, binary) == N + 1
    cases: dict[str, Callable[[], object]] = {
        "vm": partial(_appraise_via_vm, vm, data),
        "library": partial(_sha256_bank_library, policy, data),
        "with_load": vm_with_policy_load,
        "binary": partial(_appraise_via_vm, vm, binary),
    }
    keylime = _keylime()
    rounds: list[dict[str, float]] = []
    measured: list[dict[str, float]] = []
    pcr = ""
    if keylime is not None:
        from floodlight_trust.evidence.ima import appraise_measurement_list

        pcr = appraise_measurement_list(data, banks=("sha256",)).claims.pcr_values["sha256"]
    for r in range(ROUNDS):
        if keylime is not None:  # Keylime's round, then ours, in every round
            measured.append(_run_keylime(keylime, tmp / "100k", pcr))
        rounds.append(interleaved(cases, rounds=1, first_round=r))
    t = {k: statistics.median(x[k] for x in rounds) for k in cases}
    if measured:
        keylime_s = statistics.median(m["seconds"] for m in measured)
        anchor = f"Keylime 7.14 {keylime_s * 1000:,.0f} ms (measured in this run, fresh process per round)"
        _measured_keylime_rss[N] = statistics.median(m["peak_rss_mib"] for m in measured)
    else:
        keylime_s = KEYLIME_IMA_100K_MS.value / 1000
        anchor = KEYLIME_IMA_100K_MS.label()
    e2e = ratio(t["vm"], keylime_s)
    per_att = ratio(t["with_load"], keylime_s)
    lib = ratio(t["library"], keylime_s)
    out = []
    if measured:
        out.append(
            Result(
                "Keylime 7.14 IMA appraisal, 100k, side by side",
                keylime_s * 1000,
                "ms",
                work="benchmarks/keylime_ima.py in Keylime's interpreter: json.loads of the runtime policy, read "
                "the list, ima.process_measurement_list (template hashes, PCR 10 sha256 replay checked, allowlist)",
            )
        )
    return [
        *out,
        Result(
            "IMA end-to-end, 100k ima-ng ASCII, VM entry point",
            t["vm"] * 1000,
            "ms",
            ">= 6x Keylime",
            e2e >= 6,
            work="parse + sha1 template hash check + PCR 10 replay sha1 AND sha256 + host policy "
            "(100k-entry Keylime runtime policy, compiled before) via HostAttestation.appraise_ima",
            anchor=f"{anchor}: {e2e:.2f}x",
        ),
        Result(
            "IMA anchor work, 100k, library calls",
            t["library"] * 1000,
            "ms",
            work="appraise_measurement_list(banks=sha256): parse + template hash + PCR 10 sha256, "
            "then Policy.evaluate_host_round with the Keylime runtime policy",
            anchor=f"{anchor}: {lib:.2f}x",
        ),
        Result(
            "per attestation incl. policy load, 100k",
            t["with_load"] * 1000,
            "ms",
            ">= 5x Keylime",
            per_att >= 5,
            work="load_policy of the unchanged policy (its 100k-entry Keylime runtime policy included) "
            "+ the VM entry point's appraisal as above",
            anchor=f"{anchor}: {per_att:.2f}x",
        ),
        Result(
            "IMA end-to-end, 100k ima-ng binary, VM entry point",
            t["binary"] * 1000,
            "ms",
            work="as the ASCII row, on the binary_runtime_measurements form of the same list",
        ),
    ]


def _incremental_row(tmp: Path) -> Result:
    from floodlight_trust.evidence.ima import appraise_measurement_list

    base = (tmp / "100k" / "ima.log").read_bytes()
    grown = base + ima_lines(N, N + NEW)
    state = appraise_measurement_list(base).state
    t = interleaved({"inc": partial(appraise_measurement_list, grown, state=state)}, rounds=ROUNDS, calls=10)
    return Result(
        f"IMA library, +{NEW:,} entries on {N:,}, in-memory state",
        t["inc"] * 1000,
        "ms",
        work="appraise_measurement_list only (prefix memcmp, 1k entries parsed and replayed in both banks); "
        "no policy, no quote, no storage: the VM's round is in the reattest suite",
    )


_measured_keylime_rss: dict[int, float] = {}  # entries -> Keylime's peak RSS measured in this run


def _rss_rows(tmp: Path) -> list[Result]:
    out = []
    scales = [(N, KEYLIME_RSS_100K_MIB)]
    if os.environ.get("FTRUST_BENCH_1M") == "1":
        write_ima_setup(tmp / "1m", 1_000_000)
        scales.append((1_000_000, KEYLIME_RSS_1M_MIB))
    for n, anchor in scales:
        sub = "100k" if n == N else "1m"
        doc = fresh_process("benchmarks.bench_ima:fresh_appraisal", str(tmp / sub), "ima.log")
        rss = doc["peak_rss_mib"]
        theirs = _measured_keylime_rss.get(n)
        label = f"Keylime 7.14 {theirs:,.1f} MiB (measured in this run)" if theirs is not None else anchor.label()
        theirs = theirs if theirs is not None else anchor.value
        out.append(
            Result(
                f"peak RSS, fresh process, {n:,} entries",
                rss,
                "MiB",
                work="load policy + read list + VM-entry-point appraisal in a new interpreter (VmHWM)",
                anchor=f"{label}: {theirs / rss:.2f}x ({'less' if rss < theirs else 'more'} memory: ours/theirs "
                f"{rss / theirs:.2f})",
            )
        )
        if n != N:
            us = doc["result"]["seconds"] / n * 1e6
            out.append(
                Result(
                    f"IMA end-to-end per entry at {n:,} (incl. policy load), fresh process",
                    us,
                    "us/entry",
                    work="as the RSS row; one run (it takes a minute)",
                    anchor=f"{KEYLIME_IMA_US_PER_ENTRY.label()}: {KEYLIME_IMA_US_PER_ENTRY.value / us:.2f}x",
                )
            )
    return out


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        results = _e2e_rows(tmp)
        results.append(_incremental_row(tmp))
        results += _rss_rows(tmp)
    results.append(Result("load average (1, 5, 15 min) after the IMA suite", os.getloadavg()[0], "", load_average()))
    return results


def _allocate(mib: int) -> int:
    """Hold ``mib`` MiB once (the harness's test checks a fresh process's peak RSS sees it)."""
    block = bytearray(mib * 2**20)
    block[::4096] = b"\x01" * len(block[::4096])
    return len(block) // 2**20
