"""Edit Floodlight's properties file (``floodlightdefault.properties`` or the ``-cf`` file).

Only the REST server's keys (prefix ``net.floodlightcontroller.restserver.RestApiServer.``) are
set; every other line, comment, continuation and the order are kept byte for byte. The effective
settings are read the way Floodlight 1.2's RestApiServer.init reads them: true is yes/true (and
Floodlight's yep, ja, stimmt) in any case; HTTPS is off when ``keyStorePath`` is empty, and so is
plain HTTP (1.2 tests the keystore path for both); without a true ``httpsNeedClientAuthentication``
no client certificate is requested at all; the ports have no default in the code (8081/8080 are
only the values in floodlightdefault.properties), so a missing port makes startup fail; ``host``
falls back to ``FloodlightProvider.openflowhost``.
"""

# Why not javaproperties (0.8.2, measured against this module's tests): its PropertiesFile keeps an
# unchanged file byte for byte, but an edit writes "\n" lines into a CRLF file, appends a new key at
# the end instead of beside the other REST keys, deletes the other occurrences of a repeated key,
# and rewrites a file's dangling continuation line: four current tests fail, so the editor stays.
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodlight_trust import fileio
from floodlight_trust.errors import InputError, Location
from floodlight_trust.secrets import Secret

PREFIX = "net.floodlightcontroller.restserver.RestApiServer."
TRUE_WORDS = frozenset({"yes", "true", "yep", "ja", "stimmt"})  # RestApiServer.init, compared trimmed, any case
PROVIDER_PREFIX = "net.floodlightcontroller.core.internal.FloodlightProvider."
# The value floodlightdefault.properties ships (RestApiServer itself has no default port).
DEFAULT_HTTPS_PORT = 8081


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_WORDS


@dataclass
class _Logical:
    """One key/value (possibly over several physical lines)."""

    key: str
    value: str
    first: int  # index of the first physical line
    last: int  # index of the last physical line (inclusive)


def _ends_with_continuation(line: str) -> bool:
    body = line.rstrip("\r\n")
    backslashes = len(body) - len(body.rstrip("\\"))
    return backslashes % 2 == 1


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6] or ""):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _split_key_value(logical: str) -> tuple[str, str]:
    """java.util.Properties: key ends at an unescaped '=', ':' or whitespace."""
    s = logical.lstrip(" \t\f")
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            break
        i += 1
    key, rest = s[:i], s[i:]
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def escape_value(value: str) -> str:
    """A value as java.util.Properties.load (ISO-8859-1) reads it back exactly."""
    out: list[str] = []
    for n, c in enumerate(value):
        if c == "\\":
            out.append("\\\\")
        elif c in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[c])
        elif c == " " and n == 0:
            out.append("\\ ")
        elif c in "#!=:" and n == 0:
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) > 0x7E:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else "".join(f"\\u{ord(x):04x}" for x in _utf16(c)))
        else:
            out.append(c)
    return "".join(out)


def _utf16(c: str) -> list[str]:
    data = c.encode("utf-16-be")
    return [chr(int.from_bytes(data[i : i + 2], "big")) for i in range(0, len(data), 2)]


class PropertiesFile:
    """A Java properties file held as its physical lines, edited in place."""

    def __init__(self, text: str, path: Path | None = None):
        self.path = path
        self.lines = text.splitlines(keepends=True)
        self.newline = "\r\n" if any(line.endswith("\r\n") for line in self.lines) else "\n"

    @classmethod
    def load(cls, path: str | Path) -> PropertiesFile:
        p = Path(path)
        data = fileio.read_bytes(p, what="properties file")
        # Properties.load(InputStream) reads ISO-8859-1; decoding that way keeps every byte.
        return cls(data.decode("latin-1"), p)

    def _logical(self) -> list[_Logical]:
        found: list[_Logical] = []
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            stripped = line.lstrip(" \t\f")
            if not stripped.strip() or stripped[0] in "#!":
                i += 1
                continue
            first = i
            text = line.rstrip("\r\n")
            while _ends_with_continuation(text) and i + 1 < len(self.lines):
                i += 1
                text = text[:-1] + self.lines[i].rstrip("\r\n").lstrip(" \t\f")
            if _ends_with_continuation(text):  # the file ends inside a continuation
                text = text[:-1]
            key, value = _split_key_value(text)
            found.append(_Logical(key, value, first, i))
            i += 1
        return found

    def get(self, key: str) -> str | None:
        """The value Java would see (the last occurrence wins)."""
        value = None
        for entry in self._logical():
            if entry.key == key:
                value = entry.value
        return value

    def line_of(self, key: str) -> int | None:
        line = None
        for entry in self._logical():
            if entry.key == key:
                line = entry.first + 1
        return line

    def set(self, key: str, value: str) -> bool:
        """Set ``key`` (replacing its last occurrence, or appending after the other REST keys).
        Returns False if it already had exactly that value."""
        entries = self._logical()
        new_line = f"{key}={escape_value(value)}{self.newline}"
        matches = [e for e in entries if e.key == key]
        if matches:
            last = matches[-1]
            if last.value == value:
                return False
            self.lines[last.first : last.last + 1] = [new_line]
            return True
        rest = [e for e in entries if e.key.startswith(PREFIX)]
        at = rest[-1].last + 1 if rest else len(self.lines)
        if at > 0:
            prev = self.lines[at - 1].rstrip("\r\n")
            if not self.lines[at - 1].endswith(("\n", "\r")):
                self.lines[at - 1] += self.newline
            content = prev.lstrip(" \t\f")
            if content and content[0] not in "#!" and _ends_with_continuation(prev):
                # The file ends inside a continuation line: end it with an empty line, or Java would
                # read the appended key as part of the previous value. The empty line takes the
                # previous line's own break: after a bare CR, an LF would join it into one CRLF.
                self.lines.insert(at, self.lines[at - 1][len(prev) :])
                at += 1
        self.lines.insert(at, new_line)
        return True

    def text(self) -> str:
        return "".join(self.lines)

    def to_bytes(self) -> bytes:
        return self.text().encode("latin-1")

    def save(self, path: str | Path | None = None) -> Path | None:
        """Atomic write with a timestamped backup, keeping the file's permission bits, except that
        a file holding a keystore password is never left readable by others (owner and group,
        which Floodlight's service account may need, keep theirs)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InputError("no properties path given")
        mode = 0o600
        if target.exists():
            mode = target.stat().st_mode & 0o777
        if self.get(PREFIX + "keyStorePassword"):
            mode &= ~0o007
        return fileio.atomic_write(target, self.to_bytes(), mode=mode, backup=True)


@dataclass(frozen=True, slots=True)
class RestSettings:
    """What Floodlight's RestApiServer will do with these properties."""

    use_https: bool
    use_http: bool
    https_port: str | None
    http_port: str | None
    keystore_path: str | None
    keystore_password: Secret | None
    need_client_auth: bool
    host: str | None
    host_key: str | None = None  # the key ``host`` came from (``host`` or FloodlightProvider's openflowhost)
    use_http_requested: bool = False  # useHttp is true, whether or not 1.2 honours it

    def startup_failures(self) -> list[str]:
        """Why Floodlight 1.2 would not serve these settings: each makes the REST API fail to start
        (the JVM exits with code 1) or leaves it with no REST listener at all."""
        failures: list[str] = []
        for on, name, value in (
            (self.use_https, "httpsPort", self.https_port),
            (self.use_http, "httpPort", self.http_port),
        ):
            if not on:
                continue
            if value is None:
                failures.append(
                    f"{name} is missing or empty: Floodlight 1.2 has no default port and fails to start"
                    " (NumberFormatException: Cannot parse null string)"
                )
            elif not value.isdigit() or not 0 < int(value) < 65536:
                failures.append(f"{name}={value!r} is not a port number (1-65535): Floodlight 1.2 fails to start")
        if self.use_https and self.use_http and self.https_port is not None and self.https_port == self.http_port:
            failures.append(
                f"httpsPort and httpPort are both {self.https_port}: Floodlight 1.2 refuses to start"
                " (REST API's HTTP and HTTPS ports cannot be the same)"
            )
        if not self.use_https and not self.use_http:
            why = (
                " (useHttp=YES is ignored too: Floodlight 1.2 turns plain HTTP off when keyStorePath is empty)"
                if self.use_http_requested
                else ""
            )
            failures.append("neither HTTPS nor HTTP is on: Floodlight serves no REST API at all" + why)
        return failures

    def to_json(self) -> dict[str, Any]:
        return {
            "use_https": self.use_https,
            "use_http": self.use_http,
            "https_port": self.https_port,
            "http_port": self.http_port,
            "keystore_path": self.keystore_path,
            "keystore_password_set": self.keystore_password is not None,
            "need_client_auth": self.need_client_auth,
            "host": self.host,
            "host_key": self.host_key,
            "use_http_requested": self.use_http_requested,
            "startup_failures": self.startup_failures(),
        }


def rest_settings(props: PropertiesFile) -> RestSettings:
    def g(name: str) -> str | None:
        return props.get(PREFIX + name)

    path = g("keyStorePath")
    https = is_true(g("useHttps")) and bool(path)
    password = g("keyStorePassword")
    source = f"file:{props.path}" if props.path else "properties"
    # Floodlight 1.2 reads `host`, and without it FloodlightProvider's `openflowhost`.
    host_key, host = PREFIX + "host", g("host")
    if host is None:
        host_key, host = PROVIDER_PREFIX + "openflowhost", props.get(PROVIDER_PREFIX + "openflowhost")
    return RestSettings(
        use_https=https,
        # 1.2 turns plain HTTP on only with a non-empty keyStorePath too (RestApiServer.init).
        use_http=is_true(g("useHttp")) and bool(path),
        https_port=(g("httpsPort") or "").strip() or None,
        http_port=(g("httpPort") or "").strip() or None,
        keystore_path=path if https else None,
        keystore_password=Secret(password or "", source) if https else None,
        need_client_auth=https and is_true(g("httpsNeedClientAuthentication")),
        host=host,
        host_key=host_key if host is not None else None,
        use_http_requested=is_true(g("useHttp")),
    )


def check_keystore_path(path: Path) -> None:
    """Refuse a keystore path Floodlight can't read: it must be absolute (Floodlight resolves a
    relative one against its own working directory), exist and be a readable file."""
    if not path.is_absolute():
        raise InputError(
            "keystore path must be absolute (Floodlight resolves relative paths against its working directory)",
            location=Location(str(path)),
        )
    if not path.is_file():
        raise InputError("keystore file does not exist", location=Location(str(path)))
    if not os.access(path, os.R_OK):
        raise InputError("keystore file is not readable", location=Location(str(path)))


def configure_rest_https(
    props: PropertiesFile,
    *,
    keystore_path: Path,
    password: Secret,
    https_port: int = DEFAULT_HTTPS_PORT,
    keep_http: bool = False,
    host: str | None = None,
) -> list[str]:
    """Set HTTPS with required client authentication; return the keys that changed."""
    check_keystore_path(keystore_path)
    wanted: dict[str, str] = {
        "useHttps": "YES",
        "keyStorePath": str(keystore_path),
        "keyStorePassword": password.reveal(),
        "httpsNeedClientAuthentication": "YES",
        "httpsPort": str(https_port),
    }
    if not keep_http:
        wanted["useHttp"] = "NO"
    if host is not None:
        wanted["host"] = host
    return [name for name, value in wanted.items() if props.set(PREFIX + name, value)]
