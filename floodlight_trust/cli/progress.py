"""A progress line for commands that take a while: after one second on a terminal, stderr shows a
spinner, what is running and the time so far; the line is cleared when the command ends.

Nothing is written when stderr is not a terminal (pipes, files, CI), so scripted use and ``--json``
output are unchanged. Services (``vm serve``, ``agent serve``) and the narrated demo opt out with
``set_defaults(progress=False)``.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

FRAMES = "|/-\\"


class Progress:
    """Context manager: shows ``label`` with a spinner and the elapsed time after ``delay`` seconds."""

    def __init__(self, label: str, *, stream: TextIO | None = None, delay: float = 1.0, interval: float = 0.2):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.interval = interval
        self.shown = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0

    def _is_terminal(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):  # a closed or unusual stream
            return False

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self._is_terminal():
            self._thread = threading.Thread(target=self._run, name="ftrust-progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        if self._done.wait(self.delay):
            return
        frame = 0
        while True:
            elapsed = time.monotonic() - self._start
            self._write(f"\r{FRAMES[frame % len(FRAMES)]} {self.label} ({elapsed:.0f} s)\x1b[K")
            self.shown = True
            frame += 1
            if self._done.wait(self.interval):
                return

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop showing progress
            self._done.set()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown:
            self._write("\r\x1b[K")  # clear the line: the command's own output follows cleanly
