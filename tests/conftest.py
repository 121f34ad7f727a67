from __future__ import annotations

import os
from pathlib import Path

import pytest

from floodlight_trust import protocol

# Fixtures for every test that asks for one: swtpm (a simulated TPM on a temporary state directory),
# the Java bridge to the JDK's TLS stack and a throwaway PostgreSQL cluster (tests/support/).
pytest_plugins = ["tests.support.tpm", "tests.support.floodlight", "tests.support.postgres"]

# Tests also check what each side sends (production checks what it receives): docs/protocol.md.
protocol.CHECK_OUTBOUND = True
os.environ["FTRUST_CHECK_OUTBOUND"] = "1"  # the same for services, agents and enclaves started as subprocesses

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real captured evidence carried by the repository (tests/data, see its PROVENANCE.md)."""
    assert TESTDATA.is_dir(), f"real evidence expected at {TESTDATA}"
    return TESTDATA
