"""Step-by-step narration of the demo: timings, a progress display on long steps, a summary table.

Every step states what it expects; the transcript records what happened, so the demo (and its test)
can check each claim instead of trusting the story.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Step:
    key: str  # stable identifier, for the transcript and tests
    label: str  # a few words, for the summary table
    title: str  # what happens, for people
    expected: str  # what must be true for the step to pass
    ok: bool = False
    observed: str = ""  # what actually happened, in one line
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.key,
            "label": self.label,
            "title": self.title,
            "expected": self.expected,
            "ok": self.ok,
            "observed": self.observed,
            "seconds": round(self.seconds, 3),
            "details": self.details,
        }


class StepFailed(Exception):
    """A step did not behave as stated; the demo stops and reports it."""


class Narrator:
    """Prints each step as it starts and ends (``quiet`` for --json), and keeps the transcript."""

    def __init__(self, out: TextIO = sys.stdout, *, quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self.steps: list[Step] = []
        self._interactive = out.isatty() and not quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def prompt(self, text: str) -> None:
        """Something the person running the demo must read or do: on stderr in every mode
        (``--json`` too), so a machine-readable stdout never hides it."""
        print(text, file=sys.stderr, flush=True)

    @contextmanager
    def step(self, key: str, label: str, title: str, expected: str) -> Iterator[Step]:
        step = Step(key, label, title, expected)
        self.steps.append(step)
        n = len(self.steps)
        self.say(f"\n[{n}] {title}\n    expect: {expected}")
        start = time.monotonic()
        try:
            yield step
        except Exception as e:
            step.ok = False
            step.observed = step.observed or (str(e) if isinstance(e, StepFailed) else f"{type(e).__name__}: {e}")
            raise
        finally:
            step.seconds = time.monotonic() - start
            mark = "ok " if step.ok else "FAILED"
            self.say(f"    {mark} ({step.seconds:.2f} s): {step.observed}")

    def wait(self, what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 0.5) -> tuple[Any, float]:
        """Call ``probe`` until it returns something truthy, showing progress; (value, seconds)."""
        start = time.monotonic()
        stop = threading.Event()

        def progress() -> None:
            spinner = "|/-\\"
            i = 0
            while not stop.wait(0.2 if self._interactive else 5.0):
                elapsed = time.monotonic() - start
                if self._interactive:
                    self.out.write(f"\r    {spinner[i % 4]} {what} ... {elapsed:5.1f} s (at most {timeout:.0f} s)")
                    self.out.flush()
                    i += 1
                elif not self.quiet:
                    self.say(f"    ... {what}: {elapsed:.0f} s (at most {timeout:.0f} s)")

        ticker = threading.Thread(target=progress, daemon=True)
        ticker.start()
        try:
            while True:
                value = probe()
                elapsed = time.monotonic() - start
                if value:
                    return value, elapsed
                if elapsed >= timeout:
                    return None, elapsed
                time.sleep(interval)
        finally:
            stop.set()
            ticker.join()
            if self._interactive:
                self.out.write("\r" + " " * 100 + "\r")
                self.out.flush()

    def summary(self) -> str:
        rows = [(str(i), s.label, "ok" if s.ok else "FAILED", f"{s.seconds:.2f}") for i, s in enumerate(self.steps, 1)]
        headers = ("#", "step", "result", "seconds")
        widths = [max(len(r[c]) for r in [headers, *rows]) for c in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        total = sum(s.seconds for s in self.steps)
        passed = sum(1 for s in self.steps if s.ok)
        lines.append(f"{passed} of {len(self.steps)} steps behaved as stated, {total:.1f} s in all")
        return "\n".join(lines)
