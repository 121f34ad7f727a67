"""Secrets (keystore and CA passwords): from an environment variable or a file, never argv.

A :class:`Secret` never shows its value in ``repr``/``str``, logs or error messages.
"""

from __future__ import annotations

import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from floodlight_trust.errors import Location, SecretError


@dataclass(frozen=True, slots=True, eq=False)
class Secret:
    _value: str
    source: str  # "env:NAME" or "file:PATH", safe to show

    def __eq__(self, other: object) -> bool:
        # Constant time: comparing secrets must not reveal how many leading characters match.
        if not isinstance(other, Secret):
            return NotImplemented
        return self.source == other.source and hmac.compare_digest(self.reveal_bytes(), other.reveal_bytes())

    def __hash__(self) -> int:
        return hash(self.source)  # never the value

    def reveal(self) -> str:
        return self._value

    def reveal_bytes(self) -> bytes:
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return f"Secret(<hidden>, source={self.source!r})"

    __str__ = __repr__


def load_secret(*, env: str | None = None, file: str | os.PathLike[str] | None = None, what: str = "secret") -> Secret:
    """Load a secret from the environment variable ``env`` (tried first) or from ``file``.

    A file's trailing newline is dropped. A secret file readable by group or others is refused.
    """
    if env and os.environ.get(env):
        return Secret(os.environ[env], f"env:{env}")
    if file:
        path = Path(file)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise SecretError(f"{what} file not found", location=Location(str(path))) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"{what} file is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o})",
                location=Location(str(path)),
                hint=f"chmod 600 {path}",
            )
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise SecretError(f"cannot read {what} file: {e.strerror}", location=Location(str(path))) from None
        if not value:
            raise SecretError(f"{what} file is empty", location=Location(str(path)))
        return Secret(value, f"file:{path}")
    names = " or ".join(
        x for x in (f"environment variable {env}" if env else None, "a password file" if file is None else None) if x
    )
    raise SecretError(f"{what} not given", hint=f"set {names} (secrets are never taken from the command line)")
