"""`ftrust demo --database postgresql://... --replicas 2` against a throwaway PostgreSQL cluster: the
story on two replicas, one killed with SIGKILL between the enrollment and the re-attestation round,
and the revocation still reaches the controller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import json_transcript
from tests.support.postgres import PgDatabase

REPO = Path(__file__).resolve().parents[2]


def test_demo_on_two_replicas_survives_a_kill(pg_database: PgDatabase) -> None:
    env = {**os.environ, "FTRUST_DB_PASSWORD": pg_database.password}
    run = subprocess.run(
        [sys.executable, "-m", "floodlight_trust", "demo", "--json", "--replicas", "2",
         "--database", pg_database.url_without_password],
        capture_output=True, text=True, timeout=900, env=env, cwd=REPO,
    )  # fmt: skip
    assert pg_database.password not in run.stdout + run.stderr  # never printed
    doc = json_transcript(run.stdout, run.stderr, run.returncode)
    steps = {s["step"]: s for s in doc["steps"]}
    failed = [f"{s['step']}: {s.get('observed')}" for s in doc["steps"] if not s["ok"]]
    assert run.returncode == 0 and doc["ok"], (failed, run.stderr[-3000:])
    killed = steps["replica-killed"]
    assert killed["details"]["exit"] == -9 and killed["details"]["survivors"] == ["vm-2"]
    services = steps["services"]["details"]
    assert set(services["replicas"]) == {"vm-1", "vm-2"} and services["database"].startswith("postgresql://")
    order = [s["step"] for s in doc["steps"]]
    assert order.index("vnf-a-enrolled") < order.index("replica-killed") < order.index("host-compromised")
    # The round that revoked VNF A ran on the survivor, and the controller refused A afterwards.
    assert steps["host-compromised"]["ok"] and steps["vnf-a-refused"]["ok"]
    assert steps["vnf-a-refused"]["details"]["last_call"]["revoked"] is True
