"""Config values are checked for range and closed sets at load, located at FILE:LINE, so that
`port = 70000` fails when the file is read, not when `vm serve` tries to bind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust import config
from floodlight_trust.errors import ConfigError
from tests.support.cli import ftrust


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("[vm]", "port = 70000", "vm.port = 70000 must be 0-65535 (0 picks a free port)"),
        ("[agent]", "port = -1", "agent.port = -1 must be 0-65535 (0 picks a free port)"),
        ("[vm]", "reattest_interval_seconds = -5", "must be at least 0 (0 turns re-attestation off)"),
        ("[vm]", "nonce_ttl_seconds = 0", "vm.nonce_ttl_seconds = 0 must be at least 1"),
        ("[ca]", "certificate_validity_seconds = 0", "ca.certificate_validity_seconds = 0 must be at least 1"),
        ("[ca]", 'key_type = "ec-p521"', "ca.key_type = 'ec-p521' must be one of 'ec-p256', 'ec-p384'"),
        ("[vm]", 'key_mode = "vm"', "vm.key_mode = 'vm' must be one of 'enclave', 'vm-generated'"),
        ("[agent]", 'backend = "sgx"', "agent.backend = 'sgx' must be one of 'sim', 'gramine'"),
        ("[floodlight]", 'keystore_type = "jceks"', "floodlight.keystore_type = 'jceks' must be one of 'JKS'"),
        ("[ias]", "api_version = 3", "ias.api_version = 3 must be 4-5"),
    ],
)
def test_out_of_range_values_are_located(tmp_path: Path, section: str, line: str, message: str) -> None:
    path = tmp_path / "ftrust.toml"
    path.write_text(f'# site config\n[state]\ndir = "s"\n\n{section}\n{line}\n')
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value).startswith(f"{path}:6: "), str(e.value)
    assert message in str(e.value)


def test_in_range_values_load(tmp_path: Path) -> None:
    path = tmp_path / "ftrust.toml"
    path.write_text(
        '[vm]\nport = 0\nreattest_interval_seconds = 0\n[ias]\napi_version = 4\n[agent]\nbackend = "gramine"\n'
    )
    cfg = config.load(path)
    assert (cfg.get("vm", "port"), cfg.get("ias", "api_version"), cfg.get("agent", "backend")) == (0, 4, "gramine")


def test_every_constraint_names_a_declared_key_and_its_default_passes() -> None:
    for (section, key), check in config.CONSTRAINTS.items():
        _kind, default = config.SCHEMA[section][key]
        value = str(default) if isinstance(check, config.OneOf) else default
        assert check.problem(value) is None, (section, key, default)


def test_vm_serve_refuses_the_config_at_once(tmp_path: Path) -> None:
    path = tmp_path / "ftrust.toml"
    path.write_text("[vm]\nport = 70000\n")
    r = ftrust("--config", str(path), "vm", "serve", timeout=60)
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {path}:2: vm.port = 70000 must be 0-65535 (0 picks a free port)\n"


def test_shipped_configs_load_and_name_policy_files() -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    files = [configs / "ftrust.toml", *sorted((configs / "roles").glob("*.toml"))]
    assert len(files) >= 4
    for path in files:
        config.load(path)  # every key declared, every value in range
        text = path.read_text()
        for line in text.splitlines():
            if line.lstrip("# ").startswith("policy ="):
                assert line.split("=", 1)[1].split("#")[0].strip().strip('"').endswith(".policy"), (path, line)
