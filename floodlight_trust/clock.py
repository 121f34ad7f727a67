"""The one place that reads the clock. The pure core takes times as arguments instead."""

from __future__ import annotations

from datetime import UTC, datetime

from floodlight_trust.errors import InputError


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_time(text: str, *, what: str = "time") -> datetime:
    """Parse an ISO 8601 timestamp (``2025-06-20T00:00:00Z``); naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not an ISO 8601 timestamp", hint="use e.g. 2025-06-20T12:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, seconds precision."""
    if value.tzinfo is not UTC:  # (a UTC time, as clock.now gives, needs no conversion)
        value = value.astimezone(UTC)
    return value.isoformat(timespec="seconds")[:-6] + "Z"  # less "+00:00"
