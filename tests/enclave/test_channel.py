"""The agent <-> enclave channel: Unix socket or loopback TCP (Gramine), and hostile peers on it.

Each side validates what it receives: a malformed request gets a typed error and the enclave keeps
serving; a malformed or lying answer is the agent's ServiceError (a 502), never a crash.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.agent.backends import VnfEnclaves
from floodlight_trust.agent.backends.gramine import GramineBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.enclave.channel import MAX_LINE_BYTES, EnclaveChannel, EnclaveResponder, socket_path
from floodlight_trust.enclave.platform import GramineEnclave
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import InputError, ServiceError
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.client import AgentClient
from floodlight_trust.protocol.binding import key_report_data


def attestation_dir(root: Path, mrenclave: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "attestation_type").write_text("dcap\n")
    (root / "quote").write_bytes(b"QUOTE")
    (root / "user_report_data").write_bytes(b"")
    (root / "my_target_info").write_bytes(mrenclave + bytes(480))
    return root


@pytest.fixture
def runtime(tmp_path: Path) -> EnclaveRuntime:
    root = attestation_dir(tmp_path / "dev-attestation", b"\x11" * 32)
    (tmp_path / "sealed").mkdir()
    return EnclaveRuntime.start("vnf-t", GramineEnclave(attestation_root=root, sealed_dir=tmp_path / "sealed"), None)


def raw(address: tuple[str, int] | str, line: bytes) -> dict:  # type: ignore[type-arg]
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(address)
        s.sendall(line)
        with s.makefile("rb") as f:
            answer: dict = json.loads(f.readline())  # type: ignore[type-arg]
    return answer


def test_gramine_enclaves_listen_on_loopback_tcp_and_the_agent_finds_them(
    runtime: EnclaveRuntime, tmp_path: Path
) -> None:
    responder = EnclaveResponder(runtime, "tcp://127.0.0.1:0").start()
    try:
        sockets = tmp_path / "sockets"
        sockets.mkdir()
        (sockets / "vnf-t.tcp").write_text(responder.address + "\n")  # what the operator publishes
        host_root = attestation_dir(tmp_path / "host-attestation", b"\x22" * 32)
        ima = tmp_path / "ima.log"
        ima.write_bytes(b"10 abc ima-ng sha256:00 boot_aggregate\n")
        agent = Agent("gh", GramineBackend(root=host_root, socket_dir=sockets), ImaSource(None, ima))
        nonce = bytes(range(32))
        doc = agent.enclave_evidence("vnf-t", nonce)
        assert doc["public_key"] and doc["evidence_type"] == "DCAP"
        written = (tmp_path / "dev-attestation" / "user_report_data").read_bytes()
        assert written == key_report_data(nonce, runtime.public_key_der)  # the enclave's own binding
        assert [(e.vnf, e.mrenclave) for e in agent.backend.vnfs.infos()] == [("vnf-t", "11" * 32)]
    finally:
        responder.stop()


def test_malformed_requests_get_typed_errors_and_the_enclave_keeps_serving(
    runtime: EnclaveRuntime, tmp_path: Path
) -> None:
    path = socket_path(tmp_path / "s", "vnf-t")
    responder = EnclaveResponder(runtime, path).start()
    try:
        assert (path.stat().st_mode & 0o777) == 0o600
        for line, expect in [
            (b"not json\n", "not JSON"),
            (b'{"op": "evidence", "nonce": "zz"}\n', "invalid enclave_request message"),
            (b'{"op": "install", "credentials": {"vnf": 1}}\n', "invalid credentials message"),
            (b"[" * 100_000 + b"\n", "not JSON"),
            (json.dumps({"op": "install", "credentials": {"x": "\ud800"}}).encode() + b"\n", "invalid"),
        ]:
            answer = raw(str(path), line)
            assert answer["ok"] is False and answer["error"]["type"] == "InputError", answer
            assert expect in answer["error"]["message"], answer
        big = raw(str(path), b"x" * (MAX_LINE_BYTES + 10) + b"\n")
        assert big["ok"] is False and "at most" in big["error"]["message"]
        assert EnclaveChannel("vnf-t", path).info()["vnf"] == "vnf-t"  # still serving
    finally:
        responder.stop()
    assert not path.exists()


class _Liar(socketserver.StreamRequestHandler):
    answer = b""

    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(type(self).answer)


@pytest.fixture
def liar(tmp_path: Path) -> Iterator[tuple[Path, type[_Liar]]]:
    path = socket_path(tmp_path / "lies", "vnf-l")
    path.parent.mkdir()
    handler = type("Liar", (_Liar,), {})
    server = socketserver.ThreadingUnixStreamServer(str(path), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield path, handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\n",
        b'{"ok": true, "result": {"vnf": "vnf-l"}}\n',  # not an enclave_quote
        b'{"ok": true, "result": {"vnf": "vnf-other", "evidence_type": "DCAP", "quote": "", "collateral": null, "public_key": ""}}\n',
        b'{"ok": false, "error": {"type": "Whatever", "message": "x"}}\n',
        b"",
    ],
    ids=["garbage", "wrong-shape", "other-vnf", "unknown-error", "silent"],
)
def test_a_lying_enclave_is_a_service_error_and_the_agent_answers_502(
    liar: tuple[Path, type[_Liar]], answer: bytes, tmp_path: Path
) -> None:
    path, handler = liar
    handler.answer = answer
    with pytest.raises(ServiceError):
        EnclaveChannel("vnf-l", path).evidence(bytes(32))
    ima = tmp_path / "ima.log"
    ima.write_bytes(b"x")
    host_root = attestation_dir(tmp_path / "host", b"\x33" * 32)
    agent = Agent("gh", GramineBackend(root=host_root, socket_dir=path.parent), ImaSource(None, ima))
    server = HttpServer(make_app(agent), host="127.0.0.1", port=0).start()
    try:
        with pytest.raises(ServiceError) as e:
            AgentClient(server.url).enclave_evidence("vnf-l", bytes(32))
        assert "502" in str(e.value) or "enclave" in str(e.value)
    finally:
        server.stop()


def test_an_unknown_vnf_is_a_located_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no VNF enclave 'ghost' on this host"):
        VnfEnclaves(tmp_path).get("ghost")
