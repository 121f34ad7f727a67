"""Configuration: documented example and role configs load; typos and wrong types are located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust import config
from floodlight_trust.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", [CONFIGS / "ftrust.toml", *sorted((CONFIGS / "roles").glob("*.toml"))], ids=str)
def test_shipped_configs_load(path: Path) -> None:
    cfg = config.load(path)
    assert cfg.source == str(path)
    # every declared section is present with defaults filled in
    assert set(cfg.values) == set(config.SCHEMA)


def test_documented_example_lists_every_key() -> None:
    text = (CONFIGS / "ftrust.toml").read_text()
    for section, keys in config.SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} =" in text, f"configs/ftrust.toml does not document {section}.{key}"


def test_unknown_key_names_key_line_and_suggestion(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text("[vm]\nport = 8443\ntrust_simulated_sgxx = true\n")
    with pytest.raises(ConfigError) as info:
        config.load(cfg)
    assert str(info.value) == f"{cfg}:3: unknown key vm.trust_simulated_sgxx"
    assert info.value.hint == "did you mean 'trust_simulated_sgx'?"


def test_unknown_section(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text("[floodlite]\nurl = 'x'\n")
    with pytest.raises(ConfigError) as info:
        config.load(cfg)
    assert "unknown section [floodlite]" in str(info.value)
    assert info.value.hint == "did you mean 'floodlight'?"


def test_wrong_type_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text("[vm]\nport = '8443'\n")
    with pytest.raises(ConfigError, match=r"vm.port must be a int, got str"):
        config.load(cfg)


def test_boolean_is_not_an_integer(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text("[vm]\nport = true\n")
    with pytest.raises(ConfigError, match=r"vm.port"):
        config.load(cfg)


def test_invalid_toml_has_line_and_column(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text("[vm]\nport = = 1\n")
    with pytest.raises(ConfigError) as info:
        config.load(cfg)
    assert str(info.value).startswith(f"{cfg}:2:")
    assert "invalid TOML" in str(info.value)


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text('[state]\ndir = "state"\n[ca]\ndir = "myca"\n')
    loaded = config.load(cfg)
    assert loaded.state_dir == tmp_path / "state"
    assert loaded.state_path("ca", "dir") == tmp_path / "state" / "myca"
