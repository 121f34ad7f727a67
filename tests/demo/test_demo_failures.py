"""A demo whose step fails in a way nobody expected still prints its transcript (``--json``) naming the
step and the error, keeps its logs, and exits non-zero: never an empty stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floodlight_trust.cli import main
from floodlight_trust.demo.scenario import Demo
from floodlight_trust.errors import ExitCode, ServiceError


def _boom(self: Demo) -> None:
    raise RuntimeError("planted failure between steps")


def _service_error(self: Demo) -> None:
    raise ServiceError("planted: the VM did not answer")


def _boom_in_step(self: Demo) -> None:
    with self.n.step("provision", "provision", "planted", "nothing"):
        raise ConnectionResetError("planted failure inside a step")


@pytest.mark.parametrize(
    ("planted", "step", "message"),
    [(_boom, "provision", "RuntimeError: planted failure between steps"),
     (_boom_in_step, "provision", "ConnectionResetError: planted failure inside a step"),
     (_service_error, "provision", "planted: the VM did not answer")],
)  # fmt: skip
def test_an_unexpected_exception_is_a_failed_step_in_the_transcript(
    planted: object, step: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(planted, "__name__", "provision")  # as the method it replaces is named
    monkeypatch.setattr(Demo, "provision", planted)
    code = main(["demo", "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == int(ExitCode.DENIED) and doc["ok"] is False
    assert [s["step"] for s in doc["steps"]] == [step]
    assert doc["steps"][0]["ok"] is False and doc["steps"][0]["observed"] == message
    directory = Path(doc["directory"])  # kept, with the traceback
    try:
        log = directory / "logs" / "demo-error.log"
        if planted is _service_error:  # an error the code raised on purpose: its message is the story
            assert not log.exists() and "unexpected" not in err
        else:
            assert "Traceback" in log.read_text() and message.split(": ", 1)[1] in log.read_text()
            assert f"unexpected failure in provision: {message}" in err
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
