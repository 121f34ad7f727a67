"""The CLI contract: help on every level, exit codes, one-line located errors, no tracebacks."""

from __future__ import annotations

import pytest

from floodlight_trust.cli import GROUPS
from tests.support.cli import ftrust


def test_help_lists_every_group() -> None:
    r = ftrust("--help")
    assert r.returncode == 0
    for name, _ in GROUPS:
        assert name in r.stdout


def test_version() -> None:
    r = ftrust("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("ftrust ")


@pytest.mark.parametrize("group", [g for g, _ in GROUPS])
def test_help_on_every_group(group: str) -> None:
    r = ftrust(group, "--help")
    assert r.returncode == 0, r.stderr
    assert f"ftrust {group}" in r.stdout


def test_unknown_command_is_usage_error() -> None:
    r = ftrust("no-such-group")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_config_typo_surfaces_through_a_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from floodlight_trust import config

    cfg = tmp_path / "ftrust.toml"
    cfg.write_text('[ca]\nkey_typ = "ec-p256"\n')
    with pytest.raises(config.ConfigError) as info:
        config.load(cfg)
    assert str(info.value) == f"{cfg}:2: unknown key ca.key_typ"
    assert info.value.hint == "did you mean 'key_type'?"
