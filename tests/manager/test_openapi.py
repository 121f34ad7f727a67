"""docs/openapi.yaml describes exactly the routes the VM's HTTPS API serves (no drift either way)."""

from __future__ import annotations

import re
from pathlib import Path

from floodlight_trust.manager.api import make_api

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def documented_routes() -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    path = None
    for line in OPENAPI.read_text().splitlines():
        if m := re.match(r"^  (/\S*):\s*$", line):
            path = m.group(1)
        elif (m := re.match(r"^    (get|post|put|delete|patch):", line)) and path:
            routes.add((m.group(1).upper(), path))
        elif re.match(r"^\S", line):
            path = None  # left the paths section
    return routes


def served_routes() -> set[tuple[str, str]]:
    app = make_api(None, max_body_bytes=1024)  # type: ignore[arg-type]  # routes only, never called
    return {(method, pattern) for method, pattern in app.route_patterns()}


def test_openapi_matches_the_served_api() -> None:
    documented, served = documented_routes(), served_routes()
    assert documented, "no paths parsed from docs/openapi.yaml"
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
