"""The judges are the pure core: importing them loads no storage, no manager (the shell), no HTTP
client and no database driver, so a judge can neither open a database nor call a peer."""

from __future__ import annotations

import json
import subprocess
import sys

SHELL = ("floodlight_trust.manager", "floodlight_trust.storage", "floodlight_trust.httpclient", "sqlite3", "urllib3",
         "requests")  # fmt: skip


def test_importing_the_judges_loads_nothing_of_the_shell() -> None:
    code = (
        "import json, sys\n"
        "import floodlight_trust.judges.host, floodlight_trust.judges.enrollment, floodlight_trust.reasons\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert "floodlight_trust.judges.host" in loaded
    assert [m for m in loaded if m.startswith(SHELL)] == []
