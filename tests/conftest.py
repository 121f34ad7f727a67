from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real captured evidence (../shared/testdata, read-only)."""
    assert TESTDATA.is_dir(), f"real evidence expected at {TESTDATA}"
    return TESTDATA
