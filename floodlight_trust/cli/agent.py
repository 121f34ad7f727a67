"""`ftrust agent` commands."""

from __future__ import annotations

from typing import Any

from floodlight_trust.cli.output import add_group


def register(subparsers: Any, name: str, help_text: str) -> None:
    add_group(subparsers, name, help_text)
