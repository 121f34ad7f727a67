"""The engines' dialects (storage/dialect.py): one statement text, spelled for each driver; times
written by either engine read back as the same UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.postgres import POSTGRES
from floodlight_trust.storage.sqlite import SQLITE

SHARED = "SELECT * FROM manager_enrollments WHERE ({text} IS NULL OR host = ?) AND serial = ?"
# 12:00:00.123456 at UTC+02:00
AT = datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


def test_one_statement_is_spelled_for_each_driver() -> None:
    assert SQLITE.sql(SHARED) == "SELECT * FROM manager_enrollments WHERE (? IS NULL OR host = ?) AND serial = ?"
    assert POSTGRES.sql(SHARED) == (
        "SELECT * FROM manager_enrollments WHERE (%s::text IS NULL OR host = %s) AND serial = %s"
    )
    assert POSTGRES.sql(SHARED) is POSTGRES.sql(SHARED)  # rendered once


def test_a_percent_sign_in_shared_sql_is_refused() -> None:
    # psycopg would read it as a placeholder; SQLite would not: the text would mean two things.
    for dialect in (SQLITE, POSTGRES):
        with pytest.raises(ValueError, match="must not contain '%'"):
            dialect.sql("SELECT * FROM manager_hosts WHERE name LIKE 'h%'")


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
def test_times_read_back_as_utc(dialect: Dialect) -> None:
    utc = AT.astimezone(UTC)
    assert dialect.time(dialect.to_seconds(AT)) == utc.replace(microsecond=0)  # manager times: to the second
    assert dialect.time(dialect.to_exact(AT)) == utc  # CA records: exact
    assert dialect.instant(dialect.to_instant(AT)) == utc
    for value in (dialect.time(dialect.to_exact(AT)), dialect.instant(dialect.to_instant(AT))):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert dialect.time_or_none(None) is None and dialect.instant_or_none(None) is None


def test_sqlite_keeps_the_text_and_numbers_it_always_wrote() -> None:
    # Existing databases: manager times as ISO text to the second, CA times with microseconds, instants as REAL.
    assert SQLITE.to_seconds(AT) == "2026-03-01T12:00:00Z"
    assert SQLITE.to_exact(AT) == "2026-03-01T12:00:00.123456Z"
    assert SQLITE.to_instant(AT) == AT.timestamp()
    assert SQLITE.time("2026-03-01T12:00:00+00:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)  # older rows' spelling
