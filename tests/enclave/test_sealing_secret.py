"""The simulated platform's sealing secret is created once even when a host's enclaves start at the
same moment: every enclave reads the same secret, so what one sealed opens in the next run (a demo
once failed with "sealed enclave-key does not open with this enclave's sealing key")."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from floodlight_trust.enclave.platform import SEAL_SECRET_FILENAME, platform_seal_secret
from floodlight_trust.fileio import create_once


def _secret_after(platform_dir: str, barrier: object) -> bytes:
    barrier.wait()  # type: ignore[attr-defined]
    return platform_seal_secret(Path(platform_dir))


def test_enclaves_starting_at_once_all_get_the_one_secret(tmp_path: Path) -> None:
    platform_dir = tmp_path / "sgx-platform"
    ctx = multiprocessing.get_context("fork")
    for _ in range(5):  # a few rounds: the race is a window, not a certainty
        for f in platform_dir.glob("*"):
            f.unlink()
        barrier = ctx.Manager().Barrier(8)
        with ctx.Pool(8) as pool:
            secrets = pool.starmap(_secret_after, [(str(platform_dir), barrier)] * 8)
        on_disk = (platform_dir / SEAL_SECRET_FILENAME).read_bytes()
        assert set(secrets) == {on_disk} and len(on_disk) == 32
        assert stat.S_IMODE((platform_dir / SEAL_SECRET_FILENAME).stat().st_mode) == 0o600
        assert sorted(p.name for p in platform_dir.iterdir()) == [SEAL_SECRET_FILENAME]  # no temporary left


def test_create_once_never_replaces_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert create_once(path, b"first") == b"first"
    assert create_once(path, b"second") == b"first"
    assert path.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_no_secret_without_create(tmp_path: Path) -> None:
    from floodlight_trust.errors import InputError

    with pytest.raises(InputError, match="no sealing secret"):
        platform_seal_secret(tmp_path, create=False)
