"""What one SQL engine does differently from another, as the hooks the shared store code calls.

The record builders (storage/rows.py) and the stores (storage/sqlstores.py) are written once; an
engine module (storage/sqlite.py, storage/postgres.py) defines its :class:`Dialect`, for:

- SQL text: the shared statements write ``?`` for a parameter and ``{text}`` for a text parameter
  whose type a server cannot infer from the statement (``{text} IS NULL``); :meth:`Dialect.sql`
  renders them once per statement (SQLite: ``?``; psycopg: ``%s`` and ``%s::text``);
- values in: a time kept to the second (the manager's times, :meth:`to_seconds`), to the
  microsecond (the CA's records, :meth:`to_exact`), or an instant compared by order only (nonce
  expiry, audit time, :meth:`to_instant`): ISO text or epoch REAL on SQLite, TIMESTAMPTZ on PostgreSQL;
- values out: those columns back to timezone-aware UTC datetimes (:meth:`time`, :meth:`instant`).

Booleans, integers and bytes need no hook: both drivers bind Python's (SQLite stores a bool as 0/1)
and the builders coerce with ``bool()``, ``int()``, ``bytes()``. Upserts (``ON CONFLICT ... DO``)
and ``RETURNING`` are the same text on both (SQLite >= 3.35). Locks and transactions are the
engine session's (storage/sqlstores.py ``Session``), not text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any


class Dialect(ABC):
    """One engine's SQL placeholders and column conversions (one instance per engine module)."""

    __slots__ = ("_rendered",)

    name: str
    PARAMETER: str  # how the driver spells a positional parameter
    TEXT_PARAMETER: str  # a parameter the server must be told is text

    def __init__(self) -> None:
        self._rendered: dict[str, str] = {}

    def sql(self, statement: str) -> str:
        """``statement`` (``?`` parameters, ``{text}`` typed ones) in this engine's spelling; cached."""
        rendered = self._rendered.get(statement)
        if rendered is None:
            if "%" in statement:  # a driver using %s would read it as a placeholder
                raise ValueError(f"shared SQL must not contain '%': {statement!r}")
            rendered = statement.replace("?", self.PARAMETER).replace("{text}", self.TEXT_PARAMETER)
            self._rendered[statement] = rendered
        return rendered

    # -- values in ------------------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def to_seconds(at: datetime) -> object:
        """A manager time, kept to the second on every engine (a record reads back the same from each)."""

    @staticmethod
    @abstractmethod
    def to_exact(at: datetime) -> object:
        """A CA record's time, kept to the microsecond (records ordered exactly)."""

    @staticmethod
    @abstractmethod
    def to_instant(at: datetime) -> object:
        """A time compared by order (nonce expiry, audit time), exact."""

    # -- values out -----------------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def time(value: Any) -> datetime:
        """A column written by :meth:`to_seconds` or :meth:`to_exact`, as a UTC datetime."""

    @staticmethod
    @abstractmethod
    def time_or_none(value: Any) -> datetime | None: ...

    @staticmethod
    @abstractmethod
    def instant(value: Any) -> datetime:
        """A column written by :meth:`to_instant`, as a UTC datetime."""

    @staticmethod
    @abstractmethod
    def instant_or_none(value: Any) -> datetime | None: ...
