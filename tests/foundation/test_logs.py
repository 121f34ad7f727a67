"""Logs carry a UTC timestamp and the level, as text or JSON lines (python-json-logger); a
condition that holds round after round is logged when it starts, changes and ends, not every round."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys

import pytest

from floodlight_trust.logs import StateChangeLog, TextFormatter, configure, json_formatter
from tests.support.cli import ftrust

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("floodlight_trust.manager", logging.WARNING, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_text_lines_have_a_utc_timestamp_the_level_and_the_logger() -> None:
    line = TextFormatter().format(_record("agent down"))
    assert re.fullmatch(STAMP + r" WARNING floodlight_trust\.manager: agent down", line), line


def test_json_lines_are_objects_with_time_level_logger_message_and_extras() -> None:
    doc = json.loads(json_formatter().format(_record("revoked", serial="01ab", host="h1")))
    assert re.fullmatch(STAMP, doc.pop("time"))
    assert doc == {"level": "WARNING", "logger": "floodlight_trust.manager", "message": "revoked",
                   "serial": "01ab", "host": "h1"}  # fmt: skip


def test_cli_log_format_json_and_level_for_a_whole_process() -> None:
    code = (
        "import logging, sys\nfrom floodlight_trust.cli import main\n"
        "rc = main(['--log-format', 'json', '--log-level', 'info', 'ima', 'show', '/nonexistent'])\n"
        "logging.getLogger('floodlight_trust.test').info('after the command')\n"
        "logging.getLogger('floodlight_trust.test').debug('not at info')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    logged = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert [d["message"] for d in logged] == ["after the command"], r.stderr
    assert logged[0]["level"] == "INFO"
    assert "ftrust: error: /nonexistent" in r.stderr  # user errors stay one plain line
    bad = ftrust("ima", "show", "x", timeout=60, env={"FTRUST_LOG_FORMAT": "xml"})
    assert bad.returncode == 2 and "FTRUST_LOG_FORMAT='xml' must be one of text, json" in bad.stderr


def test_state_change_log_reports_a_repeated_condition_once() -> None:
    out = io.StringIO()
    logger = logging.getLogger("floodlight_trust.test.state")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        once = StateChangeLog(logger)
        for _ in range(5):
            once.report("h1", "connection refused", "re-attestation of %s failed: %s", "h1", "connection refused")
        once.report("h1", "timeout", "re-attestation of %s failed: %s", "h1", "timeout")
        once.clear("h1", "re-attestation of %s works again", "h1")
        once.clear("h1", "re-attestation of %s works again", "h1")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue().splitlines() == [
        "re-attestation of h1 failed: connection refused",
        "re-attestation of h1 failed: timeout",
        "re-attestation of h1 works again",
    ]


def test_default_handler_follows_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure() without a stream writes to sys.stderr as it is at each record: a stderr that
    was swapped in at configure time and closed since is never written to."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        configure("info")
        logging.getLogger("floodlight_trust.test.stderr").info("one")
        written_first = first.getvalue()
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("floodlight_trust.test.stderr").info("two")  # no "closed file" error
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "one" in written_first and "two" not in written_first
    assert "two" in second.getvalue() and "one" not in second.getvalue()
