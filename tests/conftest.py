from __future__ import annotations

from pathlib import Path

import pytest

# swtpm fixtures (a simulated TPM on a temporary state directory) and a throwaway PostgreSQL cluster
# (tests/support/postgres.py) for every test that asks for one.
pytest_plugins = ["tests.tpm_support", "tests.support.postgres"]

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real captured evidence carried by the repository (tests/data, see its PROVENANCE.md)."""
    assert TESTDATA.is_dir(), f"real evidence expected at {TESTDATA}"
    return TESTDATA
