"""The parser as a user meets it: every command and argument explains itself, start-up imports only
the group being run, and the shell completion script is generated from the same parser."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from floodlight_trust.cli import GROUPS, build_parser, group_named
from tests.support.cli import ftrust

NOT_DOCUMENTED = (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)


def walk(parser: argparse.ArgumentParser, path: str = "ftrust") -> list[str]:
    """Every command without a help line or description, every argument without help."""
    missing: list[str] = []
    for action in parser._actions:
        if isinstance(action, NOT_DOCUMENTED):
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path}: argument {'/'.join(action.option_strings) or action.dest} has no help")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, child in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name}: no help line in its group's list")
                if not child.description:
                    missing.append(f"{path} {name}: no description")
                missing += walk(child, f"{path} {name}")
    return missing


def leaves(parser: argparse.ArgumentParser) -> int:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return 1 if not subs else sum(leaves(c) for a in subs for c in a.choices.values())


def test_every_command_and_argument_has_help() -> None:
    parser = build_parser()
    assert leaves(parser) > 40  # the walk saw the whole tree, not a stub
    assert walk(parser) == []


def test_version_and_help_import_no_command_group() -> None:
    heavy = [f"floodlight_trust.cli.{name}" for name, _ in GROUPS] + ["cryptography", "lark", "jsonschema", "urllib3"]
    code = (
        "import sys\nfrom floodlight_trust.cli import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        f"print('LOADED=' + ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "LOADED=", f"imported at start-up: {r.stdout.splitlines()[-1]}"
    assert "ftrust 0.1" in r.stdout and "completion" in r.stdout  # --version, and --help lists every group


def test_version_and_help_start_light() -> None:
    """Issue 15 (under 0.25 s): --version builds no parser, and neither it nor --help imports the
    logging package, dataclasses or shutil (the help's width comes from $COLUMNS or the terminal)."""
    code = (
        "import sys\nfrom floodlight_trust.cli import main\n"
        "main(['--version'])\nprint('AFTER_VERSION=' + ','.join(m for m in ('logging', 'shutil') if m in sys.modules))\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('AFTER_HELP=' + ','.join(m for m in ('logging', 'dataclasses', 'shutil') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "61"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "ftrust 0.1.0" and "AFTER_VERSION=" in lines, lines[:3]
    assert lines[-1] == "AFTER_HELP=", lines[-1]
    assert "completion" in r.stdout


@pytest.mark.parametrize("columns", ["61", "", "wide", "0"])
def test_help_width_is_what_shutil_says(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from floodlight_trust.cli import _terminal_columns

    monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns


def test_only_the_group_run_is_imported() -> None:
    code = (
        "import sys\nfrom floodlight_trust.cli import main\n"
        "try:\n    main(['--config', 'policy', 'ima', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('floodlight_trust.cli.')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = r.stdout.strip().splitlines()[-1]
    assert "floodlight_trust.cli.ima" in loaded and "floodlight_trust.cli.policy" not in loaded, loaded
    assert group_named(["--config", "vm", "--debug", "ca", "list"]) == "ca"
    assert group_named(["--version"]) is None and group_named(["nope"]) is None


def test_completion_scripts_cover_every_group() -> None:
    for shell in ("bash", "zsh", "tcsh"):
        r = ftrust("completion", shell, timeout=60)
        assert r.returncode == 0, r.stderr
        for name, _ in GROUPS:
            assert name in r.stdout, f"{shell}: {name} missing"
        assert "export-cert" in r.stdout and "change-password" in r.stdout
        if shell == "bash":  # --properties FILE completes as a path
            assert "_shtab_ftrust_floodlight_provision___properties_COMPGEN=_shtab_compgen_files" in r.stdout
    bash = ftrust("completion", "bash", timeout=60).stdout
    syntax = subprocess.run(["bash", "-n"], input=bash, capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
