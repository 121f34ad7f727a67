"""The audit log in the API (and so in `vm audit --json`) holds JSON types only: a policy reason's
evidence (a read-only MappingProxyType holding frozensets) is an object with arrays, never a repr."""

from __future__ import annotations

import hashlib
from enum import Enum
from types import MappingProxyType
from typing import Any

from floodlight_trust.cli.vm import audit_reasons_cell
from floodlight_trust.reasons import json_safe as _json_safe
from tests.support.world import HOST_FILES, World

REPRS = ("mappingproxy(", "frozenset(", "{", "[", "datetime.")


def only_json_types(value: Any, where: str = "$") -> list[str]:
    """Every place in ``value`` that is not a JSON type, or a string that is a Python repr."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in only_json_types(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in only_json_types(v, f"{where}[{i}]")]
    if isinstance(value, str):
        return [f"{where}: {value[:60]!r}"] if value.startswith(REPRS) else []
    return [] if value is None or isinstance(value, bool | int | float) else [f"{where}: {type(value).__name__}"]


def test_denied_host_audit_has_only_json_types(world: World) -> None:
    host = world.start_host(files={**HOST_FILES, "/usr/bin/evil-miner": hashlib.sha256(b"evil").digest()})
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    records = [a for a in world.admin.audit() if a["host"] == host.name and not a["allowed"]]
    assert records, "the denial was not audited"
    evidence = [r["evidence"] for rec in records for r in rec["reasons"] if r.get("evidence")]
    assert evidence, "no reason carried evidence: nothing was checked"
    assert only_json_types(records) == []
    assert only_json_types(verdict) == []


class Tcb(Enum):
    UP_TO_DATE = "UpToDate"


def test_json_safe_turns_every_container_into_json() -> None:
    value = MappingProxyType({"files": frozenset({"/b", "/a"}), "tcb": Tcb.UP_TO_DATE, "raw": b"\x01",
                              "nested": MappingProxyType({"t": (1, 2)})})  # fmt: skip
    assert _json_safe(value) == {"files": ["/a", "/b"], "tcb": "UpToDate", "raw": "01", "nested": {"t": [1, 2]}}


def test_audit_table_shows_denials_first_and_notes_last() -> None:
    note = {"level": "note", "message": "SIMULATED SGX roots trusted: " + "x" * 200}
    deny = {"level": "deny", "message": "/usr/bin/evil-miner is not in the reference list"}
    cell = audit_reasons_cell([note, deny])
    assert cell.startswith("/usr/bin/evil-miner is not in the reference list; note: SIMULATED SGX")
    assert cell.endswith("... (2 reasons, --json for all)") and len(cell) < 140
    assert audit_reasons_cell([deny]) == deny["message"]
