"""The log formats and levels every ftrust process accepts (``--log-format``, ``--log-level``).

A module of its own, without ``import logging``: ``ftrust --help`` lists them, and start-up does
not pay for the logging package (issue 15: ``--version`` and ``--help`` under 0.25 s).
"""

from __future__ import annotations

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
