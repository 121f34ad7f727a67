"""``storage.url``: which engine holds the deployment's state, parsed once into a typed value.

- ``sqlite:///ABSOLUTE/PATH`` or ``sqlite://RELATIVE/PATH`` (relative to the config file): one
  process on one host; the default is ``<state.dir>/ftrust.sqlite3``.
- ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?PARAM=VALUE...]`` (``postgres://`` too,
  libpq's URI syntax and parameters): several VM replicas on one database.

A password is never kept in the connection string: it is split off into a :class:`Secret`, and
:attr:`PostgresUrl.display` (what logs and messages show) never carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from floodlight_trust.secrets import Secret

SQLITE_SCHEME = "sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class StorageUrlError(ValueError):
    """A ``storage.url`` that names no engine we have, or that its engine's syntax refuses."""


@dataclass(frozen=True, slots=True)
class SqliteUrl:
    path: Path

    @property
    def display(self) -> str:
        return f"sqlite://{self.path}"


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A PostgreSQL connection: ``conninfo`` (libpq URI, no password) and the password apart."""

    conninfo: str
    password: Secret | None = None

    @property
    def display(self) -> str:
        return self.conninfo  # the password was split off: safe to log

    def with_password(self, password: Secret | None) -> PostgresUrl:
        return PostgresUrl(self.conninfo, password)


StorageUrl = SqliteUrl | PostgresUrl


def url_has_password(text: str) -> bool:
    """Whether ``text`` carries a password (user-info or ``password=``): never to be shown, and a
    config holding one must be 0600."""
    parts = urlsplit(text)
    userinfo = parts.netloc.rpartition("@")[0]
    return bool(userinfo.partition(":")[2]) or "password=" in parts.query.lower()


def parse_storage_url(text: str, *, base_dir: Path = Path(".")) -> StorageUrl:
    """``text`` as a typed URL; :class:`StorageUrlError` says what is wrong (never echoing a password)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise StorageUrlError("must be a URL: sqlite:///PATH or postgresql://HOST/DATABASE")
    scheme = scheme.lower()
    if scheme == SQLITE_SCHEME:
        return _sqlite(rest, base_dir)
    if scheme in POSTGRES_SCHEMES:
        return _postgres(text)
    raise StorageUrlError(f"unknown engine {scheme!r}: storage.url must start with sqlite:// or postgresql://")


def _sqlite(rest: str, base_dir: Path) -> SqliteUrl:
    path_text = unquote(rest.split("?", 1)[0])
    if not path_text or path_text in ("/", ":memory:", "/:memory:"):
        raise StorageUrlError("sqlite:// needs a file path (an in-memory database is not shared state)")
    path = Path(path_text)
    return SqliteUrl(path if path.is_absolute() else base_dir / path)


def _postgres(text: str) -> PostgresUrl:
    parts = urlsplit(text)
    if parts.fragment:
        raise StorageUrlError("a postgresql URL has no #fragment")
    if "password=" in parts.query.lower():
        raise StorageUrlError(
            "a postgresql URL must not carry password= as a parameter: put it in the URL's user part "
            "of a 0600 config, or in storage.password_file / storage.password_env"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise StorageUrlError("postgresql URL names no database: postgresql://HOST/DATABASE")
    if "/" in database:
        raise StorageUrlError(f"postgresql URL path must be one database name, got {database!r}")
    # Split the password off by hand: urlsplit's hostname lowercases (a percent-encoded socket
    # directory is case-sensitive) and its port refuses libpq's host1:port1,host2:port2 lists.
    netloc, password = parts.netloc, None
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, colon, password_text = userinfo.partition(":")
        password = unquote(password_text) if colon else None
        netloc = f"{user}@{hostport}" if user else hostport
    conninfo = urlunsplit(SplitResult("postgresql", netloc, parts.path, parts.query, ""))
    _check_conninfo(conninfo)
    secret = Secret(password, "config:storage.url") if password else None
    return PostgresUrl(conninfo, secret)


def _check_conninfo(conninfo: str) -> None:
    # libpq's own parser, so an unknown or malformed ?parameter is refused when the config is read,
    # not when a replica first connects. psycopg is imported only for PostgreSQL URLs.
    import psycopg

    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as e:
        raise StorageUrlError(f"invalid postgresql URL: {str(e).strip()}") from None
