"""All SQL lives in floodlight_trust/storage/: no other module runs a statement or names a driver."""

from __future__ import annotations

import re
from pathlib import Path

import floodlight_trust

PACKAGE = Path(floodlight_trust.__file__).parent
# What `grep -rn "execute(\|sqlite3" floodlight_trust` finds, and the PostgreSQL driver's names.
FORBIDDEN = re.compile(r"execute\(|sqlite3|psycopg")


def test_no_module_outside_storage_speaks_sql() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.parent.relative_to(PACKAGE).parts[:1] != ("storage",)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert found == [], "SQL outside floodlight_trust/storage/:\n" + "\n".join(found)


def test_the_check_sees_the_storage_package_itself() -> None:
    engine = (PACKAGE / "storage" / "sqlite.py").read_text(encoding="utf-8")
    assert FORBIDDEN.search(engine)  # the pattern matches real SQL code: the test above is not vacuous
