"""One HTTP client stack: no module of the package imports requests (or another client library);
every client goes through floodlight_trust.clients.httpclient (urllib3)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "floodlight_trust"
OTHER_CLIENTS = {"requests", "httpx", "aiohttp", "http.client", "urllib.request"}
# `ftrust floodlight check` is a probe of ONE fresh TLS handshake (was a client certificate
# requested? refused by alert?), read at the socket level: not an HTTP client of a service.
# The demo's plugin chapter probes what the plugin must refuse: a RESUMED TLS session (the ssl
# session of an earlier connection) and one kept-alive connection reused across a revocation; both
# need the socket in hand, which a pooling client hides on purpose.
PROBES = {"floodlight/client.py": {"http.client"}, "demo/plugin_chapter.py": {"http.client"}}
# The listeners (http/server.py) are a server of their own on httptools' parser, no client library:
# nothing is allowed here.
SERVERS: dict[str, set[str]] = {}


def test_no_second_http_client_in_the_package() -> None:
    found = []
    urllib3_users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                rel = path.relative_to(PACKAGE).as_posix()
                allowed = PROBES.get(rel, set()) | SERVERS.get(rel, set())
                if (name in OTHER_CLIENTS or name.split(".")[0] == "requests") and name not in allowed:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}")
                if name.split(".")[0] == "urllib3":
                    urllib3_users.append(path.relative_to(PACKAGE).as_posix())
    assert found == []
    assert "clients/httpclient.py" in urllib3_users
