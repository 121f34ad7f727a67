"""Atomic, backed-up file writes for keystores, CA files, configs and state.

A write goes to a temporary file in the same directory, is fsync'ed, then renamed over the target
(atomic on POSIX), and the directory is fsync'ed. An interrupted write leaves the old file intact.
With ``backup=True`` the previous content is first kept as ``NAME.YYYYmmddTHHMMSS[.N].bak``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from floodlight_trust import clock
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
    except ValueError:  # a NUL in the path (e.g. a policy's import or include string)
        raise InputError(f"{what} path contains a NUL character", location=Location(repr(str(path))[1:-1])) from None


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    data = read_bytes(path, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text", location=Location(str(path), offset=e.start)) from None


def backup_name(path: Path) -> Path:
    stamp = clock.now().strftime("%Y%m%dT%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}.{n}.bak")
        n += 1
    return candidate


def _copy_private(source: Path, backup: Path, mode: int) -> None:
    """Copy ``source`` to a new ``backup`` that has ``mode`` from its creation (a keystore's backup
    is never readable by others, not even for a moment), fsync'ed."""
    try:
        fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o700)
        with os.fdopen(fd, "wb") as out, open(source, "rb") as old:
            shutil.copyfileobj(old, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(backup, mode)
    except OSError as e:
        raise InputError(f"cannot back up before writing: {e.strerror}", location=Location(str(backup))) from None


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
        _copy_private(target, saved, mode)
    tmp = _written_beside(target, data, mode)
    try:
        if _before_rename is not None:
            _before_rename(tmp)
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise InputError(f"cannot replace: {e.strerror}", location=Location(str(target))) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return saved


def _written_beside(target: Path, data: bytes, mode: int) -> Path:
    """A temporary file in ``target``'s directory holding ``data`` with ``mode``, fsync'ed (removed
    again if writing it fails)."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise InputError(f"cannot write here: {e.strerror}", location=Location(str(target))) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write: {e.strerror}", location=Location(str(target))) from None
    return tmp


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_once(path: Path, data: bytes, *, mode: int = 0o600) -> bytes:
    """Create ``path`` with ``data`` unless it exists, atomically across processes, and return what
    it holds afterwards: ours, or what a process that created it first wrote (the file is written
    whole under a temporary name and linked into place, and a link never replaces a file)."""
    tmp = _written_beside(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return read_bytes(path)
    except OSError as e:
        raise InputError(f"cannot create: {e.strerror}", location=Location(str(path))) from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return data


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600) for the block: processes on one machine
    that check-then-create the same files (replicas starting at once) take turns."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
