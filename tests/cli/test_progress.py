"""The progress line: shown on a terminal after the delay, cleared at the end; never on a pipe."""

from __future__ import annotations

import io
import threading

from floodlight_trust.cli import _command_label, build_parser
from floodlight_trust.cli.progress import Progress


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool = True):
        super().__init__()
        self.tty = tty
        self.written = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        n = super().write(text)
        self.written.set()
        return n


def test_a_slow_command_shows_a_spinner_and_clears_it() -> None:
    term = FakeTerminal()
    with Progress("ftrust policy eval", stream=term, delay=0.01, interval=0.01):
        assert term.written.wait(10)  # the command "runs" until the line appeared
    out = term.getvalue()
    assert out.startswith("\r") and "ftrust policy eval (0 s)" in out
    assert out.endswith("\r\x1b[K")  # the line is cleared: the command's own output starts clean


def test_a_fast_command_writes_nothing() -> None:
    term = FakeTerminal()
    with Progress("ftrust ima show", stream=term, delay=60):
        pass
    assert term.getvalue() == ""


def test_nothing_on_a_pipe_or_file() -> None:
    pipe = FakeTerminal(tty=False)
    p = Progress("ftrust ima show", stream=pipe, delay=0)
    with p:
        pass
    assert p._thread is None and pipe.getvalue() == ""


def test_services_and_the_demo_opt_out_and_commands_are_labelled() -> None:
    parser = build_parser()
    for argv in (["vm", "serve"], ["agent", "serve"], ["demo"]):
        assert parser.parse_args(argv).progress is False, argv
    args = parser.parse_args(["--debug", "policy", "check", "p.policy"])
    assert getattr(args, "progress", True) is True
    assert _command_label(args, ["--debug", "policy", "check", "p.policy"]) == "ftrust policy check"
