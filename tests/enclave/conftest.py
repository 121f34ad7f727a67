"""Tests of the enclave runtime check what each side sends too; the JDK peer is built once."""

from __future__ import annotations

import os

from floodlight_trust import protocol
from tests.floodlight.conftest import bridge_jar

protocol.CHECK_OUTBOUND = True
os.environ["FTRUST_CHECK_OUTBOUND"] = "1"  # the same for the enclave and agent processes

__all__ = ["bridge_jar"]
