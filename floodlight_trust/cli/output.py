"""Shared CLI plumbing: group registration, ``--json`` output and one-line error reports."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from floodlight_trust.errors import FtrustError, InputError

if TYPE_CHECKING:  # imported by load_config: `ftrust policy` and `ima` commands read no configuration
    from floodlight_trust import config as config_mod
    from floodlight_trust.evidence.ima.signatures import KeyringEntry


def add_group(subparsers: Any, name: str, help_text: str) -> Any:
    """Add a command group and return its sub-command action."""
    group = subparsers.add_parser(name, help=help_text, description=help_text)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest="command", metavar="COMMAND")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON result")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a zero validity or interval is refused,
    never silently replaced by a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port number, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {value}")
    return value


def load_config(args: argparse.Namespace) -> config_mod.Config:
    from floodlight_trust import config as config_mod

    return config_mod.load(getattr(args, "config", None))


def read_keyrings(paths: Sequence[str]) -> list[KeyringEntry]:
    """The certificates and public keys of ``--keyring`` files (PEM or DER, any number each) for
    ima-sig signatures; a file that holds none is an error located at it."""
    from floodlight_trust.evidence.verify import load_keyring
    from floodlight_trust.fileio import read_bytes

    entries: list[KeyringEntry] = []
    for path in paths:
        try:
            entries.extend(load_keyring(read_bytes(path, what="keyring file"), "keyring file"))
        except InputError as e:
            raise e.with_file(path) from None
    return entries


def emit(args: argparse.Namespace, data: Any, text: Callable[[], str] | str | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else the human text (a string or a thunk)."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
        sys.stdout.write("\n")
        return
    if text is None:
        return
    out = text() if callable(text) else text
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_error(e: FtrustError) -> None:
    """``ftrust: error: FILE:LINE:COL: message`` then ``  hint: ...`` on stderr."""
    print(f"ftrust: error: {e}", file=sys.stderr)
    if e.hint:
        print(f"  hint: {e.hint}", file=sys.stderr)
