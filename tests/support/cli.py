"""The real `ftrust` CLI in a child process, as a user runs it: the one runner every test uses.

Tests that need a long-running command (``vm serve``, ``agent serve``, ``enclave serve``) start
``ftrust_command(...)`` with ``subprocess.Popen`` themselves; everything else calls ``ftrust``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def ftrust_command(*argv: object, config: Path | None = None) -> list[str]:
    """``python -m floodlight_trust [--config CONFIG] ARGV`` with this interpreter (each item as ``str``)."""
    command = [sys.executable, "-m", "floodlight_trust"]
    if config is not None:
        command += ["--config", str(config)]
    return command + [str(a) for a in argv]


def ftrust(
    *argv: object,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = REPO,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``ftrust ARGV`` to completion and return what it printed (text) and its exit code.

    The child runs in ``cwd`` (the repository by default) with this tree's code first on
    ``PYTHONPATH``, this process's environment plus ``env``, ``stdin`` as its standard input (an
    empty one when not given: a command that would wait for input fails instead of hanging) and
    at most ``timeout`` seconds.
    """
    return subprocess.run(
        ftrust_command(*argv, config=config),
        capture_output=True,
        text=True,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": _this_tree_first(), **(env or {})},
    )


def _this_tree_first() -> str:
    inherited = os.environ.get("PYTHONPATH")
    return str(REPO) if not inherited else f"{REPO}{os.pathsep}{inherited}"


def state_config(directory: Path, extra: str = "") -> Path:
    """``directory/ftrust.toml`` naming ``directory/state`` as the state directory (then ``extra``),
    written once: a test that wrote its own config there keeps it."""
    path = directory / "ftrust.toml"
    if not path.exists():
        path.write_text(f'[state]\ndir = "{directory / "state"}"\n{extra}')
    return path


def json_transcript(stdout: str, stderr: str, returncode: int | None) -> dict[str, Any]:
    """A command's JSON stdout, or an assertion naming its exit code and the end of its stderr
    (a command that printed no JSON tells why, instead of a bare JSONDecodeError)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise AssertionError(
            f"exit {returncode}, stdout is not JSON ({stdout[:200]!r}); stderr ends:\n{stderr[-4000:]}"
        ) from None
    assert isinstance(doc, dict), doc
    return doc
