"""`vm serve` and `agent serve` under systemd: readiness when the listeners are up (Type=notify),
and any startup failure exits non-zero at once with no listener left open (Restart=on-failure)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.cli import ftrust, ftrust_command
from tests.support.world import policy_text

REPO = Path(__file__).resolve().parents[2]
ENV = {"FTRUST_CA_PASSWORD": "correct horse battery", "FTRUST_ADMIN_KEY_PASSWORD": "admin key password"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, api: int, crl: int, agent: int = 0) -> list[str]:
    (tmp / "site.policy").write_text(policy_text())
    (tmp / "ima.log").write_text("")
    (tmp / "ftrust.toml").write_text(
        f"""
[state]
dir = "{tmp / "state"}"
[vm]
port = {api}
crl_port = {crl}
policy = "site.policy"
[agent]
port = {agent}
name = "lifecycle-host"
ima_log = "/nonexistent"
ima_log_fallback = "ima.log"
"""
    )
    return ["--config", str(tmp / "ftrust.toml")]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("lifecycle")
    cfg = write_config(tmp, 0, 0)
    init = ftrust(*cfg, "ca", "init", timeout=120, env=ENV)  # fmt: skip
    assert init.returncode == 0, init.stderr
    return tmp


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    try:
        yield sock, path
    finally:
        sock.close()


def serve(cfg: list[str], role: str, notify: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, **ENV}
    if notify:
        env["NOTIFY_SOCKET"] = notify
    return subprocess.Popen(
        ftrust_command(*cfg, role, "serve"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("held", ["api", "crl"])
def test_a_port_in_use_exits_non_zero_at_once_and_leaves_no_listener(state: Path, held: str) -> None:
    api, crl = free_port(), free_port()
    holder = socket.create_server(("127.0.0.1", api if held == "api" else crl))
    try:
        proc = serve(write_config(state, api, crl), "vm")
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (out, err)
        assert time.monotonic() - t0 < 30
        assert f"cannot listen on 127.0.0.1:{api if held == 'api' else crl}" in err
        assert "Traceback" not in err and "internal error" not in err
        free = crl if held == "api" else api
        with pytest.raises(OSError):  # the other port was never left listening
            socket.create_connection(("127.0.0.1", free), timeout=2).close()
    finally:
        holder.close()


def test_vm_serve_signals_ready_when_both_listeners_answer(state: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    api, crl = free_port(), free_port()
    proc = serve(write_config(state, api, crl), "vm", notify=path)
    try:
        message = sock.recv(256).decode()
        assert message == "READY=1"
        # At READY, both listeners already answer (no retry loop needed).
        pin = str(state / "state" / "vm-tls" / "server.pem")
        assert requests.get(f"https://127.0.0.1:{api}/v1/health", verify=pin, timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{crl}/v1/health", timeout=5).json()["status"] == "ok"
        assert "ftrust_http_requests_total" in requests.get(f"http://127.0.0.1:{crl}/metrics", timeout=5).text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert sock.recv(256).decode() == "STOPPING=1"
    # The access log names each request (client, request line, status).
    assert '"GET /v1/health HTTP/1.1" 200' in err


def test_agent_serve_signals_ready(state: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    port = free_port()
    proc = serve(write_config(state, 0, 0, agent=port), "agent", notify=path)
    try:
        assert sock.recv(256).decode() == "READY=1"
        assert requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).json()["host"] == "lifecycle-host"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
