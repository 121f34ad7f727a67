"""``ftrust``: the command-line tool. Noun-verb subcommands, one small module per command group.

Each group module exposes ``register(subparsers)``; each command sets ``func(args) -> int``.
Commands parse arguments, call one function of the core or the shell, and format its result.
Errors raised as :class:`~floodlight_trust.errors.FtrustError` become one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from floodlight_trust import __version__
from floodlight_trust.cli.output import report_error
from floodlight_trust.errors import ExitCode, FtrustError

# (module, help) in the order --help lists them.
GROUPS: tuple[tuple[str, str], ...] = (
    ("policy", "write, check, format, test and evaluate attestation policies"),
    ("ima", "inspect, verify and replay Linux IMA measurement lists"),
    ("sgx", "inspect and verify SGX quotes (DCAP) and fetch collateral"),
    ("ias", "verify Intel Attestation Service reports (EPID)"),
    ("ca", "the Verification Manager's certificate authority"),
    ("floodlight", "provision and check the Floodlight controller's keystore and properties"),
    ("vm", "run and administer the Verification Manager"),
    ("agent", "run the container-host agent"),
    ("demo", "run the end-to-end demonstration on embedded defaults"),
)

EPILOG = """exit codes:
  0  success / allowed
  1  verification failed or policy denied
  2  bad input or usage
  3  internal error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftrust",
        description="Attestation-gated access to the Floodlight controller for SGX VNFs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ftrust {__version__}")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML); see configs/ftrust.toml")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    for name, help_text in GROUPS:
        module = importlib.import_module(f"floodlight_trust.cli.{name}")
        module.register(sub, name, help_text)
    return parser


def _command_label(args: argparse.Namespace, argv: list[str]) -> str:
    """``ftrust GROUP COMMAND`` as typed (for the progress line)."""
    group = str(getattr(args, "group", "") or "")
    words = [w for w in argv if not w.startswith("-")]
    if group in words:
        after = words[words.index(group) + 1 :]
        return " ".join(["ftrust", group, *after[:1]])
    return "ftrust"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="ftrust: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    func = getattr(args, "func", None)
    if func is None:
        # A group without a command: show that group's help.
        target = getattr(args, "group_parser", parser)
        target.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    try:
        if not getattr(args, "progress", True):
            return int(func(args))
        from floodlight_trust.cli.progress import Progress

        with Progress(_command_label(args, sys.argv[1:] if argv is None else list(argv))):
            return int(func(args))
    except FtrustError as e:
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
