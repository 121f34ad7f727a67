from __future__ import annotations

from floodlight_trust.cli import run

run()
