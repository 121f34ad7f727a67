"""Agent side: IMA source fallback, the gramine backend on a directory of files, credential checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floodlight_trust.agent.backends.gramine import GramineBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.enclave.channel import EnclaveResponder, socket_path
from floodlight_trust.enclave.platform import GramineEnclave
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import InputError
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.client import AgentClient
from floodlight_trust.protocol import b64decode
from floodlight_trust.protocol.binding import host_report_data, key_report_data


def gramine_dir(root: Path, kind: str = "dcap") -> Path:
    root.mkdir(parents=True)
    (root / "attestation_type").write_text(kind + "\n")
    (root / "quote").write_bytes(b"QUOTE-BYTES")
    (root / "user_report_data").write_bytes(b"")
    return root


def test_ima_source_prefers_the_kernel_list_and_falls_back(tmp_path: Path) -> None:
    fallback = tmp_path / "ima.log"
    fallback.write_bytes(b"10 abc ima-ng sha256:00 boot_aggregate\n")
    data, source = ImaSource(tmp_path / "no-securityfs", fallback).read()
    assert data == fallback.read_bytes() and source == str(fallback)
    with pytest.raises(InputError, match="no readable IMA measurement list"):
        ImaSource(tmp_path / "a", tmp_path / "b").read()


def test_gramine_backend_writes_report_data_and_reads_the_quote(tmp_path: Path) -> None:
    root = gramine_dir(tmp_path / "attestation")
    vnf_root = gramine_dir(tmp_path / "vnf-a" / "attestation")  # the VNF enclave's OWN /dev/attestation
    (vnf_root / "my_target_info").write_bytes(b"\x5a" * 32 + bytes(480))
    (tmp_path / "vnf-a" / "sealed").mkdir()
    runtime = EnclaveRuntime.start(
        "vnf-a", GramineEnclave(attestation_root=vnf_root, sealed_dir=tmp_path / "vnf-a" / "sealed"), None
    )
    sockets = tmp_path / "sockets"
    responder = EnclaveResponder(runtime, socket_path(sockets, "vnf-a")).start()
    ima = tmp_path / "ima.log"
    ima.write_bytes(b"10 abc ima-ng sha256:00 boot_aggregate\n")
    agent = Agent("gh", GramineBackend(root=root, socket_dir=sockets), ImaSource(None, ima))
    try:
        nonce = bytes(range(32))
        doc = agent.host_evidence(nonce)
        assert doc["evidence_type"] == "DCAP" and b64decode(doc["quote"], what="q") == b"QUOTE-BYTES"
        assert (root / "user_report_data").read_bytes() == host_report_data(nonce, ima.read_bytes())
        enclave = agent.enclave_evidence("vnf-a", nonce)
        spki = runtime.public_key_der
        assert (vnf_root / "user_report_data").read_bytes() == key_report_data(nonce, spki)
        assert b64decode(enclave["public_key"], what="k") == spki
        assert (root / "user_report_data").read_bytes() != key_report_data(nonce, spki)  # not the agent's
        assert [(e.vnf, e.mrenclave) for e in agent.backend.vnfs.infos()] == [("vnf-a", "5a" * 32)]
        # The key was born in the enclave and sealed on its encrypted mount.
        assert (tmp_path / "vnf-a" / "sealed" / "enclave-key").exists()
    finally:
        responder.stop()


def test_gramine_backend_refuses_an_unknown_attestation_type(tmp_path: Path) -> None:
    root = gramine_dir(tmp_path / "attestation", kind="none")
    with pytest.raises(InputError, match="unsupported Gramine attestation type 'none'"):
        GramineBackend(root=root).host_evidence(bytes(64))


def test_agent_service_validates_messages_and_answers_errors_as_json(tmp_path: Path) -> None:
    root = gramine_dir(tmp_path / "attestation")
    ima = tmp_path / "ima.log"
    ima.write_bytes(b"x")
    agent = Agent("gh", GramineBackend(root=root), ImaSource(None, ima))
    server = HttpServer(make_app(agent), host="127.0.0.1", port=0).start()
    try:
        client = AgentClient(server.url)
        assert client.info()["backend"] == "gramine"
        with pytest.raises(InputError, match="invalid challenge message at /nonce"):
            client.request("POST", "/v1/host/evidence", {"nonce": "zz"})
        with pytest.raises(InputError, match="no VNF enclave 'ghost'"):
            client.enclave_evidence("ghost", bytes(32))
        doc = client.host_evidence(bytes(32))
        assert json.loads(json.dumps(doc))["host"] == "gh"
    finally:
        server.stop()


def test_host_evidence_binds_the_whole_list_and_sends_the_tail_asked_for(tmp_path: Path) -> None:
    root = gramine_dir(tmp_path / "attestation")
    ima = tmp_path / "ima.log"
    first = b"10 abc ima-ng sha256:00 boot_aggregate\n"
    ima.write_bytes(first)
    agent = Agent("gh", GramineBackend(root=root, socket_dir=tmp_path / "sockets"), ImaSource(None, ima))
    nonce = bytes(range(32))
    agent.host_evidence(nonce)
    with ima.open("ab") as fh:
        fh.write(b"10 def ima-ng sha256:01 /usr/bin/x\n")
    doc = agent.host_evidence(nonce, len(first))  # the list extends what was read: only the tail
    assert doc["ima_offset"] == len(first)
    assert b64decode(doc["ima_list"], what="l") == b"10 def ima-ng sha256:01 /usr/bin/x\n"
    assert (root / "user_report_data").read_bytes() == host_report_data(nonce, ima.read_bytes())
    # A rewritten prefix: the quote binds the new whole list (the VM's binding check then fails).
    ima.write_bytes(b"10 abc ima-ng sha256:ff boot_aggregate\n10 def ima-ng sha256:01 /usr/bin/x\n")
    doc = agent.host_evidence(nonce, len(first))
    assert (root / "user_report_data").read_bytes() == host_report_data(nonce, ima.read_bytes())
    # Asked for more than the list holds (truncated, rebooted): the whole list.
    ima.write_bytes(first[:10])
    doc = agent.host_evidence(nonce, len(first))
    assert doc["ima_offset"] == 0 and b64decode(doc["ima_list"], what="l") == first[:10]
    assert (root / "user_report_data").read_bytes() == host_report_data(nonce, first[:10])
