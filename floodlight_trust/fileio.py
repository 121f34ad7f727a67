"""Atomic, backed-up file writes for keystores, CA files, configs and state.

A write goes to a temporary file in the same directory, is fsync'ed, then renamed over the target
(atomic on POSIX), and the directory is fsync'ed. An interrupted write leaves the old file intact.
With ``backup=True`` the previous content is first kept as ``NAME.YYYYmmddTHHMMSS[.N].bak``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from floodlight_trust.errors import InputError, Location

# Test hook: called after the temporary file is complete and before the rename, so tests can
# inject a crash exactly there. Always None in production.
_before_rename: Callable[[Path], None] | None = None


def read_bytes(path: str | os.PathLike[str], *, what: str = "file") -> bytes:
    """Read a whole file, turning OS errors into a located InputError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", location=Location(str(path))) from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, expected a file", location=Location(str(path))) from None
    except PermissionError:
        raise InputError(f"{what} is not readable (permission denied)", location=Location(str(path))) from None
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", location=Location(str(path))) from None


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    data = read_bytes(path, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text", location=Location(str(path), offset=e.start)) from None


def backup_name(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}.{n}.bak")
        n += 1
    return candidate


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o600, backup: bool = False
) -> Path | None:
    """Replace ``path`` with ``data`` atomically; return the backup path if one was made."""
    target = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("directory does not exist", location=Location(str(directory)))
    saved: Path | None = None
    if backup and target.exists():
        saved = backup_name(target)
        shutil.copy2(target, saved)
        os.chmod(saved, mode)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if _before_rename is not None:
            _before_rename(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return saved
