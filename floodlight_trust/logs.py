"""How every ftrust process logs: one line per record with a UTC timestamp, the level and the
logger, as text (``2026-01-31T12:00:00.123Z WARNING floodlight_trust.manager: ...``) or as JSON
objects (one per line: ``time``, ``level``, ``logger``, ``message`` and any ``extra`` fields).

:class:`StateChangeLog` keeps a condition that holds round after round (an agent down, simulated
SGX trusted) from repeating its warning: it is logged when it starts and when it changes, and its
end once, at INFO.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Hashable
from typing import Any, TextIO

from floodlight_trust.logging_names import FORMATS, LEVELS

__all__ = ["FORMATS", "LEVELS", "StateChangeLog", "TextFormatter", "configure", "json_formatter"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _utc_time(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record)


def json_formatter() -> logging.Formatter:
    """python-json-logger's formatter with our field names and UTC timestamps."""
    from pythonjsonlogger.json import JsonFormatter

    class _Formatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            return _utc_time(record)

    return _Formatter(
        ["asctime", "levelname", "name", "message"],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the object it was when
    logging was configured: a command run in-process by a host program (or a test harness) that
    swaps and later closes its stderr leaves no handler pointing at a closed file, which server
    threads still running would otherwise hit ("I/O operation on closed file")."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure(level: str = "warning", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (default: the current stderr) in
    ``fmt``; replaces any handler set before (a process configures its logging once, at start)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


class StateChangeLog:
    """Log a condition per key only when its state changes (thread-safe).

    ``report(key, state, msg, *args)`` logs at ``level`` (WARNING by default) the first time ``key``
    is seen in ``state`` and whenever that state changes; repeats are dropped. ``clear(key, msg)``
    logs the end of the condition once, at INFO, if it was reported.
    """

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._states: dict[Hashable, Hashable] = {}
        self._lock = threading.Lock()

    def report(self, key: Hashable, state: Hashable, msg: str, *args: Any, level: int = logging.WARNING) -> bool:
        with self._lock:
            if key in self._states and self._states[key] == state:
                return False
            self._states[key] = state
        self.logger.log(level, msg, *args)
        return True

    def clear(self, key: Hashable, msg: str, *args: Any) -> bool:
        with self._lock:
            if key not in self._states:
                return False
            del self._states[key]
        self.logger.info(msg, *args)
        return True
