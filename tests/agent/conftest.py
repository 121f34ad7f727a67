"""Tests also check what each side sends (production checks only what it receives)."""

from __future__ import annotations

import os

from floodlight_trust import protocol

protocol.CHECK_OUTBOUND = True
os.environ["FTRUST_CHECK_OUTBOUND"] = "1"  # the same for services started as subprocesses
