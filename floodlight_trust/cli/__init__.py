"""``ftrust``: the command-line tool. Noun-verb subcommands, one small module per command group.

Each group module exposes ``register(subparsers)``; each command sets ``func(args) -> int``.
Commands parse arguments, call one function of the core or the shell, and format its result.
Errors raised as :class:`~floodlight_trust.errors.FtrustError` become one line on stderr.

Only the group being run is imported (``ftrust --version`` and ``ftrust --help`` import none):
the others are listed by name and help text alone, so start-up does not pay for every group's
dependencies (cryptography, lark, jsonschema, ...).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection, Sequence
from typing import NoReturn

from floodlight_trust import __version__
from floodlight_trust.logging_names import FORMATS as LOG_FORMATS
from floodlight_trust.logging_names import LEVELS as LOG_LEVELS

# floodlight_trust.logs and .errors (logging, dataclasses, ...) are imported once the arguments are
# parsed: `ftrust --version` and `ftrust --help` exit before that (issue 15: under 0.25 s).

# (module, help) in the order --help lists them.
GROUPS: tuple[tuple[str, str], ...] = (
    ("policy", "write, check, format, test and evaluate attestation policies"),
    ("ima", "inspect, verify and replay Linux IMA measurement lists"),
    ("sgx", "inspect and verify SGX quotes (DCAP) and fetch collateral"),
    ("ias", "verify Intel Attestation Service reports (EPID)"),
    ("tpm", "show and verify TPM 2.0 quotes, check EK certificates"),
    ("ca", "the Verification Manager's certificate authority"),
    ("floodlight", "provision and check the Floodlight controller's keystore and properties"),
    ("vm", "run and administer the Verification Manager"),
    ("agent", "run the container-host agent"),
    ("enclave", "run a VNF enclave, call the controller from it, check Gramine manifests"),
    ("demo", "run the end-to-end demonstration on embedded defaults"),
    ("completion", "print a shell completion script (bash, zsh, tcsh)"),
)
# Global options that take a value (to find the group's name in argv without parsing it).
_VALUE_OPTIONS = frozenset({"--config", "--log-format", "--log-level"})

EPILOG = """exit codes:
  0  success / allowed
  1  verification failed or policy denied
  2  bad input or usage
  3  internal error
"""


def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` says ($COLUMNS, else the terminal, else 80),
    without importing shutil (and with it bz2 and lzma) for every ``ftrust --help``."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


def build_parser(groups: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every group's commands (``groups`` None), or only those of ``groups``: the
    others are placeholders with their help text, never run."""
    parser = argparse.ArgumentParser(
        prog="ftrust",
        description="Attestation-gated access to the Floodlight controller for SGX VNFs.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"ftrust {__version__}")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML); see configs/ftrust.toml")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("FTRUST_LOG_FORMAT") or "text",
        help="log lines as text or JSON objects, each with a UTC timestamp and the level"
        " (default: $FTRUST_LOG_FORMAT, else text)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get("FTRUST_LOG_LEVEL") or "warning",
        help="least severe level logged (default: $FTRUST_LOG_LEVEL, else warning; --debug: debug)",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    for name, help_text in GROUPS:
        if groups is None or name in groups:
            module = importlib.import_module(f"floodlight_trust.cli.{name}")
            module.register(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    describe_commands(parser)
    return parser


def describe_commands(parser: argparse.ArgumentParser) -> None:
    """Give every command without a description its one-line help as description (what
    ``ftrust GROUP COMMAND --help`` shows first); one place, so no command can lack one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, child in action.choices.items():
                if not child.description and helps.get(name):
                    child.description = helps[name]
                describe_commands(child)


def group_named(argv: Sequence[str]) -> str | None:
    """The command group ``argv`` runs (its first word that is not a global option), if any."""
    names = {name for name, _ in GROUPS}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUE_OPTIONS:
            skip = True
        elif word == "--":
            return None
        elif not word.startswith("-"):
            return word if word in names else None
    return None


def _command_label(args: argparse.Namespace, argv: list[str]) -> str:
    """``ftrust GROUP COMMAND`` as typed (for the progress line)."""
    group = str(getattr(args, "group", "") or "")
    words = [w for w in argv if not w.startswith("-")]
    if group in words:
        after = words[words.index(group) + 1 :]
        return " ".join(["ftrust", group, *after[:1]])
    return "ftrust"


def main(argv: Sequence[str] | None = None, *, executable: bool = False) -> int:
    """Run the command ``argv`` (default: the process's arguments) and return its exit code.
    ``executable``: this process is the ``ftrust`` executable (:func:`run`), which ends with the
    command: a command that ends (not a service) may then tune the process for it
    (:func:`keep_freed_memory`); a caller running commands in its own process keeps its settings."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:  # what argparse's version action prints, without building a parser
        print(f"ftrust {__version__}")
        return 0
    group = group_named(words)
    parser = build_parser(() if group is None else (group,))
    args = parser.parse_args(words)
    from floodlight_trust import logs
    from floodlight_trust.errors import ExitCode, FtrustError

    # A default from the environment is not checked by argparse's choices: check it here.
    for var, value, allowed in (("FTRUST_LOG_FORMAT", args.log_format, LOG_FORMATS),
                                ("FTRUST_LOG_LEVEL", args.log_level, LOG_LEVELS)):  # fmt: skip
        if value not in allowed:
            parser.error(f"{var}={value!r} must be one of {', '.join(allowed)}")
    logs.configure("debug" if args.debug else args.log_level, args.log_format)
    func = getattr(args, "func", None)
    if func is None:
        # A group without a command: show that group's help.
        target = getattr(args, "group_parser", parser)
        target.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    try:
        if not getattr(args, "progress", True):  # a service (or the narrated demo): runs as it is
            return int(func(args))
        if executable:
            keep_freed_memory()
        from floodlight_trust.cli.progress import Progress

        with Progress(_command_label(args, words)):
            return int(func(args))
    except FtrustError as e:
        from floodlight_trust.cli.output import report_error

        report_error(e)
        if args.debug:
            raise
        return int(e.exit_code)
    except KeyboardInterrupt:
        print("ftrust: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as e:  # a bug: say so in one line, traceback only with --debug
        if args.debug:
            raise
        print(f"ftrust: internal error: {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
        return int(ExitCode.INTERNAL)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Have glibc's malloc keep, for the command's next allocations, the memory it frees (True when
    it could be told; other C libraries: False, nothing changed).

    A fresh process gets every page from the kernel by a page fault when first written; by default
    glibc also gives each block from 128 KiB up (a measurement list read whole, a policy's JSON text,
    a large dict's table) its own mapping, unmapped when freed, so the next such block faults its
    pages in again, and it returns the top of the heap to the kernel past 128 KiB free. A
    long-running process raises those thresholds itself as it frees blocks (the library call in a
    warm process does not pay again); a command that ends in seconds has no time to. Blocks under
    ``mmap_threshold`` come from the heap, and up to ``trim_threshold`` free at its top stays: for
    ``policy eval --ima-log`` on 100k entries, about a third fewer page faults. Only for commands
    that end, in the ``ftrust`` executable (services keep glibc's defaults: their memory goes back to
    the kernel)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):  # no ctypes, or a C library without mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def run() -> NoReturn:
    """The ``ftrust`` executable (and ``python -m floodlight_trust``): :func:`main`, then :func:`leave`."""
    try:
        code = main(executable=True)
    except SystemExit as e:  # argparse: --help, a usage error
        if e.code is not None and not isinstance(e.code, int):
            raise
        code = e.code or 0
    leave(code)


def leave(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter would, less its teardown.

    After the command, CPython frees every object and module one by one before the process ends
    (for ``policy eval`` on a 100k-entry list, a few per cent of the command); the kernel reclaims
    the memory at once. So: the exit handlers run (``atexit``: logging's flush, temporary
    directories, ...), standard output and error are flushed, then ``os._exit`` (the files a
    command writes are closed by then: fileio's atomic writes close and fsync). Whenever that
    could lose or change anything, the interpreter's own exit instead: a non-daemon thread still
    running (it would be waited for), a profiler or tracer at work (``python -m cProfile`` writes
    its report after the program, coverage after its exit handler), or a flush that fails (a
    closed pipe: reported as always).
    """
    import atexit

    threading = sys.modules.get("threading")  # never imported: no thread was started
    alone = threading is None or all(t is threading.main_thread() or t.daemon for t in threading.enumerate())
    if alone and sys.getprofile() is None and sys.gettrace() is None:
        atexit._run_exitfuncs()  # they run once: the interpreter's exit would not run them again
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):  # a closed pipe or stream, or none at all
            pass
        else:
            os._exit(code)
    sys.exit(code)
