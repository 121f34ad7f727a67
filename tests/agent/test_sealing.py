"""Simulated sealing: a VNF key on disk opens only for the enclave (MRENCLAVE) that sealed it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.agent.sealing import (
    credential_paths,
    open_sealed,
    platform_seal_secret,
    sealing_key,
    write_sealed,
)
from floodlight_trust.errors import InputError


def test_sealed_key_is_encrypted_private_and_opens_only_for_its_enclave(tmp_path: Path) -> None:
    secret = platform_seal_secret(tmp_path / "platform")
    assert stat.S_IMODE((tmp_path / "platform" / "sealing.secret").stat().st_mode) == 0o600
    assert platform_seal_secret(tmp_path / "platform") == secret  # stable across restarts
    good = sealing_key(secret, b"\x01" * 32)
    key = ec.generate_private_key(ec.SECP256R1())
    write_sealed(tmp_path / "creds", "vnf-a", key, "chain", good)
    _, key_path = credential_paths(tmp_path / "creds", "vnf-a")
    data = key_path.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in data
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert good.reveal() not in repr(good)
    opened = open_sealed(tmp_path / "creds", "vnf-a", good)
    assert opened.key == key_path

    other_enclave = sealing_key(secret, b"\x02" * 32)
    with pytest.raises(InputError, match="does not open with this enclave's sealing key"):
        open_sealed(tmp_path / "creds", "vnf-a", other_enclave)
    other_platform = sealing_key(platform_seal_secret(tmp_path / "platform-2"), b"\x01" * 32)
    with pytest.raises(InputError):
        open_sealed(tmp_path / "creds", "vnf-a", other_platform)


def test_not_enrolled_yet(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="vnf-x has no certificate chain"):
        open_sealed(tmp_path, "vnf-x", sealing_key(b"\x00" * 32, b"\x00" * 32))


def test_no_secret_without_create(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no sealing secret"):
        platform_seal_secret(tmp_path, create=False)
