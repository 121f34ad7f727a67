"""What a fresh ``ftrust`` process does besides its command (issue 15: `policy eval --ima-log`
within 1.5x of the library call): it imports only what the command needs, and it ends without
the interpreter's teardown (``cli.leave``) while losing nothing the teardown would have kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.fixtures import write_ima_setup
from tests.support.cli import REPO

_RUN = [sys.executable, "-c"]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_RUN, code], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_eval_of_evidence_imports_no_configuration_schema_or_crypto(tmp_path: Path) -> None:
    """`policy eval POLICY --ima-log LOG` judges the list: it reads no configuration (tomllib), no
    package data through importlib.resources, and needs neither jsonschema nor cryptography; a
    host-only policy compiles without the certificate side (pki: grants, profiles, and through
    them the SGX quote parser), and no misspelt name asks difflib for a suggestion."""
    files = write_ima_setup(tmp_path, 20)
    unwanted = ["floodlight_trust.config", "tomllib", "importlib.resources", "jsonschema", "cryptography",
                "floodlight_trust.pki", "floodlight_trust.evidence.sgx_quote", "difflib"]  # fmt: skip
    code = (
        "import sys\nfrom floodlight_trust.cli import main\n"
        f"rc = main(['policy', 'eval', {files['policy']!r}, '--ima-log', {files['log']!r}, '--host', 'h'])\n"
        f"print('RC', rc, 'LOADED=' + ','.join(m for m in {unwanted!r} if m in sys.modules))\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("allowed: host h"), r.stdout  # the command ran, and judged the list
    assert r.stdout.splitlines()[-1] == "RC 0 LOADED=", r.stdout.splitlines()[-1]


def test_leave_runs_exit_handlers_flushes_and_keeps_the_code() -> None:
    """Buffered output (more than a pipe holds at once) and what exit handlers print all arrive,
    in order, and the exit code is the command's; the teardown (which would finalize ``kept``) is
    skipped."""
    code = (
        "import atexit, logging, sys\nfrom floodlight_trust.cli import leave\n"
        "class Kept:\n    def __del__(self):\n        print('torn down')\n"
        "kept = Kept()\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        "logging.getLogger('t').warning('logged')\n"
        "sys.stdout.write('x' * 200_000 + '\\n')\n"
        "leave(3)\n"
    )
    r = _python(code)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "x" * 200_000 + "\nhandler ran\n"
    assert r.stderr == "logged\n"


def test_leave_waits_for_a_thread_still_running() -> None:
    """A non-daemon thread still at work when the command returns is waited for, as the
    interpreter's exit does: here it prints a line only after the test has seen ``leaving``."""
    code = (
        "import sys, threading\nfrom floodlight_trust.cli import leave\n"
        "t = threading.Thread(target=lambda: print('late: ' + sys.stdin.readline().strip(), flush=True))\n"
        "t.start()\nprint('leaving', flush=True)\nleave(4)\n"
    )
    with subprocess.Popen([*_RUN, code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO) as p:
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline() == "leaving\n"
        p.stdin.write("go\n")
        p.stdin.close()
        rest = p.stdout.read()
        assert p.wait(timeout=60) == 4
    assert rest == "late: go\n"


def test_leave_with_a_closed_pipe_exits_as_the_interpreter_does() -> None:
    """Output left in the buffer for a reader that is gone: the interpreter's own exit reports it
    (exit status 120, "Exception ignored"), not a silent success."""
    code = "import sys\nfrom floodlight_trust.cli import leave\nsys.stdout.write('x' * 100)\nleave(0)\n"
    r_fd, w_fd = os.pipe()
    os.close(r_fd)  # no reader: the flush fails with EPIPE
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the write stays buffered
        r = subprocess.run([*_RUN, code], stdout=w_fd, stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO, env=env)
    finally:
        os.close(w_fd)
    assert r.returncode == 120, r.stderr
    assert "BrokenPipeError" in r.stderr and "Traceback" not in r.stderr


def test_a_profiler_or_tracer_gets_the_interpreters_exit(tmp_path: Path) -> None:
    """`python -m cProfile -o FILE -m floodlight_trust ...` writes its report after the program, and
    a tracer (coverage, a debugger) may act at the teardown: with either, ftrust exits normally."""
    report = tmp_path / "ftrust.prof"
    r = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(report), "-m", "floodlight_trust", "--version"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("ftrust "), r.stderr
    assert report.stat().st_size > 0
    code = (
        "import sys\nfrom floodlight_trust.cli import leave\nsys.settrace(lambda *a: None)\n"
        "try:\n    leave(5)\nexcept SystemExit as e:\n    print('interpreter exit', e.code)\n    raise\n"
    )
    r = _python(code)
    assert r.returncode == 5 and r.stdout == "interpreter exit 5\n", r.stdout + r.stderr


# Whether glibc's malloc gives a new 1 MiB block its own mapping (mallinfo2's hblks grows by one,
# glibc's default from 128 KiB) or takes it from the heap (0).
_MAPPED_BLOCKS = (
    "import ctypes\n"
    "class MallInfo2(ctypes.Structure):\n"
    "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena ordblks smblks hblks hblkhd usmblks fsmblks'\n"
    "                                                ' uordblks fordblks keepcost').split()]\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.mallinfo2.restype = MallInfo2\n"
    "def mapped_blocks():\n"
    "    before = libc.mallinfo2().hblks\n"
    "    block = bytearray(1 << 20)\n"
    "    return libc.mallinfo2().hblks - before + 0 * len(block)\n"
)


def _glibc_with_mallinfo2() -> bool:
    r = _python("import ctypes\nctypes.CDLL(None).mallinfo2")
    return r.returncode == 0


def test_a_command_of_the_executable_keeps_freed_memory_for_its_next_blocks(tmp_path: Path) -> None:
    """`ftrust policy eval` (the executable: cli.run) takes its large blocks from malloc's heap, not
    one mapping each (``keep_freed_memory``: fewer page faults); a caller of ``main`` in its own
    process keeps glibc's defaults."""
    if not _glibc_with_mallinfo2():
        pytest.skip("glibc's mallinfo2 is not available here: malloc's settings cannot be observed")
    files = write_ima_setup(tmp_path, 20)
    argv = ["ftrust", "policy", "eval", files["policy"], "--ima-log", files["log"], "--host", "h"]
    code = _MAPPED_BLOCKS + (
        "import atexit, sys\nfrom floodlight_trust.cli import main, run\n"
        f"main({argv[1:]!r})\n"
        "print('AFTER_MAIN', mapped_blocks(), flush=True)\n"
        "atexit.register(lambda: print('AFTER_RUN', mapped_blocks(), flush=True))\n"
        f"sys.argv = {argv!r}\nrun()\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines.count("allowed: host h (policy version " + lines[0].split("version ")[1]) == 2, lines
    assert "AFTER_MAIN 1" in lines, lines  # glibc's default: the block has its own mapping
    assert "AFTER_RUN 0" in lines, lines  # from the heap, where the freed block was kept


def test_keep_freed_memory_is_a_no_op_where_it_cannot_be_told() -> None:
    """Without mallopt (another C library) nothing changes and the command runs as before."""
    code = (
        "import ctypes\nfrom floodlight_trust import cli\n"
        "class NoMallopt:\n    def __init__(self, name): pass\n"
        "ctypes.CDLL = NoMallopt\n"
        "print(cli.keep_freed_memory())\n"
    )
    r = _python(code)
    assert r.returncode == 0 and r.stdout == "False\n", r.stdout + r.stderr
