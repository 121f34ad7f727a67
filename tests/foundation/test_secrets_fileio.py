"""Secrets never leak into repr or errors; atomic writes keep the old file on a crash and back it up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from floodlight_trust import fileio
from floodlight_trust.errors import InputError, SecretError
from floodlight_trust.secrets import load_secret


def test_secret_from_env_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FT_TEST_PW", "hunter22")
    s = load_secret(env="FT_TEST_PW", what="CA password")
    assert s.reveal() == "hunter22"
    assert "hunter22" not in repr(s) and "hunter22" not in str(s)
    assert s.source == "env:FT_TEST_PW"


def test_secret_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("hunter22\n")
    f.chmod(0o644)
    with pytest.raises(SecretError) as info:
        load_secret(file=f, what="keystore password")
    assert "accessible by group or others (mode 0644)" in str(info.value)
    assert "hunter22" not in str(info.value)
    f.chmod(0o600)
    assert load_secret(file=f).reveal() == "hunter22"


def test_missing_secret_says_where_to_put_it() -> None:
    with pytest.raises(SecretError) as info:
        load_secret(env="FT_TEST_UNSET_VARIABLE", what="CA password")
    assert "CA password not given" in str(info.value)
    assert "FT_TEST_UNSET_VARIABLE" in (info.value.hint or "")


def test_atomic_write_mode_and_backup(tmp_path: Path) -> None:
    target = tmp_path / "store.jks"
    assert fileio.atomic_write(target, b"one") is None
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    backup = fileio.atomic_write(target, b"two", backup=True)
    assert backup is not None and backup.read_bytes() == b"one"
    assert target.read_bytes() == b"two"


def test_crash_before_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ca.pem"
    target.write_bytes(b"old")

    def crash(_tmp: Path) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(fileio, "_before_rename", crash)
    with pytest.raises(OSError, match="power cut"):
        fileio.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ca.pem"]  # no temp file left behind


def test_read_bytes_errors_are_located(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        fileio.read_bytes(tmp_path / "nope.bin", what="quote")
    assert str(info.value) == f"{tmp_path / 'nope.bin'}: quote not found"
    os.mkdir(tmp_path / "d")
    with pytest.raises(InputError, match="is a directory"):
        fileio.read_bytes(tmp_path / "d")


def test_secrets_compare_by_value_and_source_without_hashing_the_value() -> None:
    from floodlight_trust.secrets import Secret

    a, b = Secret("hunter22", "env:A"), Secret("hunter22", "env:A")
    assert a == b and a != Secret("hunter23", "env:A") and a != Secret("hunter22", "env:B")
    assert hash(a) == hash(Secret("something else", "env:A"))  # the hash never depends on the value


def test_atomic_write_to_an_unwritable_place_is_a_located_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "store.jks"
    target.write_bytes(b"old")

    def read_only_directory(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")  # what a non-root user gets in a read-only dir

    with monkeypatch.context() as m:
        m.setattr(fileio.tempfile, "mkstemp", read_only_directory)
        with pytest.raises(InputError) as info:
            fileio.atomic_write(target, b"new")
    assert str(info.value) == f"{target}: cannot write here: Permission denied"
    assert target.read_bytes() == b"old"
    with pytest.raises(InputError) as info:
        fileio.atomic_write(tmp_path, b"data")  # the target is a directory
    assert str(info.value) == f"{tmp_path}: cannot replace: Is a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["store.jks"]  # no temporary file left behind


def test_backup_of_a_private_file_is_private(tmp_path: Path) -> None:
    target = tmp_path / "floodlight.properties"
    target.write_bytes(b"old")
    target.chmod(0o644)
    backup = fileio.atomic_write(target, b"new", mode=0o600, backup=True)
    assert backup is not None and stat.S_IMODE(backup.stat().st_mode) == 0o600 and backup.read_bytes() == b"old"
