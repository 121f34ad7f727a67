"""The command line as a user waits for it: fresh ``ftrust`` processes, wall time, median of rounds.

``ftrust --version`` and ``--help`` (issue 15: under 0.25 s), and ``ftrust policy eval POLICY
--ima-log LOG`` on the 100,000-entry list and Keylime runtime policy of the ima suite, against the
library call doing the same work in this process (load the policy, appraise the list through the
VM's entry point; issue 15: within 1.5x). The eval row is skipped, and says so, while the command
has no --ima-log.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Result
from benchmarks.fixtures import write_ima_setup

ROUNDS = 7
N = 100_000


def _ftrust() -> list[str]:
    return [str(Path(sys.executable).with_name("ftrust"))]


def _run(argv: list[str], rounds: int = ROUNDS, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, from the children's rusage) of a fresh
    process: on a loaded machine the wall time is mostly waiting for a core, the CPU time is not."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if proc.returncode not in ok:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return statistics.median(walls), statistics.median(cpus)


def _wall(argv: list[str], rounds: int = ROUNDS, ok: tuple[int, ...] = (0,)) -> float:
    return _run(argv, rounds, ok)[0]


def _as_installed() -> None:
    """Byte-compile the package as pip does when it installs it, so the commands below start as an
    installed ``ftrust`` does (not compiling every module from source because this environment
    sets PYTHONDONTWRITEBYTECODE); the policy parser's tables are then cached by the first policy
    command (cli/policy.parse_tables_file), as after a user's first run. Untimed."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "floodlight_trust"), str(root / "policy_lang")],
        capture_output=True,
        check=False,
    )


def run() -> list[Result]:
    from benchmarks.bench_ima import fresh_appraisal
    from policy_lang import reference

    _as_installed()
    results = []
    for flag in ("--version", "--help"):
        t, cpu = _run([*_ftrust(), flag], rounds=3 * ROUNDS)
        results.append(
            Result(
                f"ftrust {flag}",
                t,
                "s",
                "< 0.25 s",
                t < 0.25,
                work="a fresh process: interpreter start, imports, argument parsing, output; "
                f"median CPU (user + system) {cpu * 1000:.0f} ms (the rest of the wall time is waiting for a core)",
            )
        )
    usage = subprocess.run([*_ftrust(), "policy", "eval", "--help"], capture_output=True, text=True, check=False)
    if "--ima-log" not in usage.stdout:
        results.append(
            Result(
                "ftrust policy eval --ima-log (not measured: the command has no --ima-log yet)",
                float("nan"),
                "s",
                "<= 1.5x library",
            )
        )
        return results
    with tempfile.TemporaryDirectory() as tmp:
        files = write_ima_setup(Path(tmp), N)
        argv = [*_ftrust(), "policy", "eval", files["policy"], "--ima-log", files["log"], "--host", "h"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run(argv, capture_output=True, check=False, env=env)  # a first run: caches the parse tables
        samples_cli, samples_lib, cpu_cli, cpu_lib = [], [], [], []
        for _ in range(5):  # interleaved: command, then the library call in this process
            wall, cpu = _run(argv, rounds=1)
            samples_cli.append(wall)
            cpu_cli.append(cpu)
            reference.clear_cache()  # the command compiles the policy cold: so does the library call
            c0 = time.process_time()
            samples_lib.append(fresh_appraisal(tmp, "ima.log")["seconds"])
            cpu_lib.append(time.process_time() - c0)
    cli, lib = statistics.median(samples_cli), statistics.median(samples_lib)
    ccli, clib = statistics.median(cpu_cli), statistics.median(cpu_lib)
    results.append(
        Result(
            f"ftrust policy eval --ima-log, {N:,} entries",
            cli,
            "s",
            "<= 1.5x library",
            cli <= 1.5 * lib,
            work="fresh process (bytecode and parse tables cached, as after a first run): load the policy "
            "(100k-entry Keylime runtime policy), appraise the list, judge it; median CPU (user + system) "
            f"{ccli:.3f} s vs the library call's {clib:.3f} s: {ccli / clib:.2f}x",
            anchor=f"library call (load_policy cold + VM entry point, in this process) {lib:.3f} s: {cli / lib:.2f}x",
        )
    )
    return results
