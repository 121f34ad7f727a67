"""The whole process model on the simulated platform, over real sockets.

The agent (`ftrust agent serve`) and two VNF enclaves (`ftrust enclave serve`, one process each,
same image) run as their own processes; the VM and its CRL/OCSP responder on loopback; the JDK's
TLS stack as the controller (java-bridge, PKIX revocation with OCSP). The VNFs are enrolled through
the agent, call the controller with keys that never left their enclave, pick up a renewal without a
restart, see a revocation as a typed error; without its process a VNF cannot be quoted; a tampered
image measures differently and cannot open the enrolled enclave's sealed key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from floodlight_trust.enclave import ControllerClient, RevokedError
from floodlight_trust.enclave.platform import SimEnclave
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import InputError
from floodlight_trust.floodlight import bridge
from floodlight_trust.pki.ca import load_ca_certificate
from floodlight_trust.sgxsim import measure_enclave_image
from tests.support.cli import ftrust, ftrust_command
from tests.support.enclaves import (
    VNF_CODE,
    EnclaveProcess,
    enclave_policy,
    make_image,
    start_enclave,
    write_enclave_config,
)
from tests.support.floodlight import STORE_PASSWORD, write_keystore
from tests.support.world import HOST_FILES, World, ima_list, make_world, policy_text

A, B = "vnf-proc-a", "vnf-proc-b"
SWITCHES = "/wm/core/controller/switches/json"


@dataclass
class Model:
    world: World
    tmp: Path
    host: str
    agent_url: str
    sockets: Path
    image: Path
    enclaves: dict[str, EnclaveProcess]
    endpoint: bridge.FloodlightEndpoint
    controller_pem: Path

    def config(self, vnf: str) -> Path:
        return self.enclaves[vnf].config

    def call(self, vnf: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        r = ftrust(
            "enclave",
            "call",
            SWITCHES,
            "--controller",
            self.endpoint.url,
            "--controller-ca",
            str(self.controller_pem),
            "--json",
            config=self.config(vnf),
        )
        assert "Traceback" not in r.stderr, r.stderr
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr}

    def runtime_of(self, vnf: str) -> EnclaveRuntime:
        """VNF code inside the enclave of ``vnf``: the same image and sealed state, another process."""
        sealed = self.tmp / "enclaves" / vnf / "sealed"
        platform = SimEnclave.open(platform_dir=self.world.platforms[0].directory, image=self.image, sealed_dir=sealed)
        return EnclaveRuntime.start(vnf, platform, load_ca_certificate(self.world.ca.directory), create_key=False)


def _start_agent(tmp: Path, world: World, sockets: Path, port: int) -> subprocess.Popen[bytes]:
    ima = tmp / "host.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    config = tmp / "agent.toml"
    config.write_text(
        f"""[state]
dir = "{tmp / "agent-state"}"

[agent]
host = "127.0.0.1"
port = {port}
name = "proc-host"
backend = "sim"
ima_log = "{tmp / "no-securityfs"}"
ima_log_fallback = "{ima}"
sim_platform_dir = "{world.platforms[0].directory}"
enclave_socket_dir = "{sockets}"
"""
    )
    log = (tmp / "agent.log").open("wb")
    return subprocess.Popen(
        ftrust_command("--config", str(config), "agent", "serve"),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, bridge_jar: Path) -> Iterator[Model]:
    tmp = tmp_path_factory.mktemp("process-model")
    worlds = make_world(tmp, crl_port=bridge._free_port("127.0.0.1"))
    world = next(worlds)
    started: list[EnclaveProcess] = []
    agent: subprocess.Popen[bytes] | None = None
    endpoint = None
    try:
        image = tmp / "image"
        mrenclave = make_image(image, world.ca.certificate_pem)
        (tmp / "site.policy").write_text(policy_text() + enclave_policy(mrenclave))
        assert world.admin.reload_policy(dry_run=False)
        sockets = tmp / "sockets"
        for vnf in (A, B):
            config = write_enclave_config(tmp / "enclaves", vnf, image, world.platforms[0].directory, sockets)
            started.append(start_enclave(config, vnf, sockets))
        port = bridge._free_port("127.0.0.1")
        agent = _start_agent(tmp, world, sockets, port)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert agent.poll() is None, (tmp / "agent.log").read_text()
            try:
                requests.get(f"{url}/v1/info", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the agent did not start"
                time.sleep(0.1)
        world.admin.add_host("proc-host", url)
        for vnf in (A, B):  # their identities, as an admin registers them
            world.admin.add_vnf("proc-host", vnf)
        keystore, controller_pem = write_keystore(tmp, world.ca)
        endpoint = bridge.FloodlightEndpoint(
            keystore, STORE_PASSWORD, pkix_revocation=True, ocsp=True, ocsp_timeout_seconds=5
        ).start()
        yield Model(world, tmp, "proc-host", url, sockets, image, {e.vnf: e for e in started}, endpoint, controller_pem)
    finally:
        if endpoint is not None:
            endpoint.stop()
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        for e in started:
            e.stop()
        worlds.close()


def test_the_agent_relays_to_each_enclave_and_both_enroll(model: Model) -> None:
    info = requests.get(f"{model.agent_url}/v1/info", timeout=10).json()
    mrenclave = bytes(measure_enclave_image(model.image)).hex()
    assert info["enclaves"] == [{"vnf": A, "mrenclave": mrenclave}, {"vnf": B, "mrenclave": mrenclave}]
    for vnf in (A, B):
        doc = model.world.admin.enroll(model.host, vnf)
        assert doc["allowed"], doc["reasons"]
        # The certificate is for the key born in that enclave; the enclave reports what it installed.
        assert model.enclaves[vnf].info()["certificate_sha256"] is not None
    keys = {model.enclaves[v].info()["public_key"] for v in (A, B)}
    assert len(keys) == 2  # one key per enclave process, same image
    r = ftrust("enclave", "info", "--json", config=model.config(A))  # another process of A's image: same key
    assert r.returncode == 0 and json.loads(r.stdout)["public_key"] == model.enclaves[A].info()["public_key"]
    for vnf in (A, B):  # sealed on disk, never in the clear
        for f in (model.tmp / "enclaves" / vnf / "sealed").iterdir():
            assert b"PRIVATE KEY" not in f.read_bytes() and b"CERTIFICATE" not in f.read_bytes()


def test_a_vnf_calls_the_jdk_controller_with_its_enclave_key(model: Model) -> None:
    code, doc = model.call(A)
    assert code == 0, doc
    assert doc["status"] == 200 and isinstance(doc["body"], list) and doc["revoked"] is False
    enrolled = [e for e in model.world.admin.enrollments() if e["vnf"] == A and e["status"] == "active"]
    assert doc["serial"] == enrolled[0]["serial"]


def test_a_renewal_is_picked_up_without_a_restart(model: Model) -> None:
    client = ControllerClient(model.runtime_of(A), model.endpoint.url, controller_ca=model.controller_pem)
    first = client.get(SWITCHES)
    assert first.status == 200
    renewed = model.world.admin.enroll(model.host, A)  # through the agent to the enclave PROCESS of A
    assert renewed["allowed"], renewed["reasons"]
    second = client.get(SWITCHES)  # the same client object, nothing restarted
    assert second.status == 200
    assert second.serial == renewed["serial"] != first.serial


def test_a_vm_generated_key_is_unwrapped_inside_the_enclave_and_used(model: Model) -> None:
    """The paper's mode: the VM's key, wrapped to the enclave's key, opens only in that process."""
    doc = model.world.admin.enroll(model.host, A, key_mode="vm-generated")
    assert doc["allowed"] and doc["key_mode"] == "vm-generated" and doc["wrapped_key"], doc["reasons"]
    code, call = model.call(A)  # another process of A's image opens the sealed (unwrapped) key
    assert code == 0 and call["status"] == 200 and call["serial"] == doc["serial"], call
    assert model.enclaves[A].info()["certificate_sha256"] is not None
    back = model.world.admin.enroll(model.host, A)  # and back to the enclave's own key
    assert back["allowed"] and model.call(A)[1]["serial"] == back["serial"]


def test_a_revocation_surfaces_as_a_typed_error(model: Model) -> None:
    client = ControllerClient(model.runtime_of(B), model.endpoint.url, controller_ca=model.controller_pem)
    assert client.get(SWITCHES).status == 200
    assert model.world.admin.revoke(vnf=B, reason="test: VNF B compromised")
    with pytest.raises(RevokedError, match="revoked by the Verification Manager") as revoked:
        client.get(SWITCHES)  # the JDK asks OCSP on every handshake: the next call is refused
    assert revoked.value.vnf == B
    code, doc = model.call(B)
    assert code == 1 and doc["revoked"] is True and "revoked by the Verification Manager" in doc["message"]
    assert model.call(A)[0] == 0  # the other VNF is untouched


def test_without_its_process_a_vnf_cannot_be_quoted(model: Model) -> None:
    proc = model.enclaves[B]
    proc.stop()
    assert not proc.socket.exists()
    r = requests.post(f"{model.agent_url}/v1/vnfs/{B}/evidence", json={"nonce": "00" * 32}, timeout=10)
    assert r.status_code == 400 and f"no VNF enclave {B!r} on this host" in r.json()["error"]["message"]
    before = len(model.world.admin.enrollments())
    with pytest.raises(InputError, match=f"agent: no VNF enclave {B!r} on this host"):
        model.world.admin.enroll(model.host, B)  # the VM relays the agent's 400
    assert len(model.world.admin.enrollments()) == before  # nothing issued
    listed = requests.get(f"{model.agent_url}/v1/info", timeout=10).json()["enclaves"]
    assert [e["vnf"] for e in listed] == [A]


def test_a_tampered_image_has_another_mrenclave_and_cannot_open_the_sealed_key(model: Model) -> None:
    tampered = model.tmp / "tampered-image"
    shutil.copytree(model.image, tampered)
    (tampered / "vnf.py").write_bytes(VNF_CODE.replace(b"firewall", b"firewal1"))  # one byte
    assert measure_enclave_image(tampered) != measure_enclave_image(model.image)
    # The tampered build, given vnf-proc-a's sealed state, cannot open its key: it refuses to start.
    config = model.config(A).read_text().replace(f'image = "{model.image}"', f'image = "{tampered}"')
    tampered_config = model.tmp / "enclaves" / "tampered-a.toml"
    tampered_config.write_text(config.replace(f"{A}.sock", "tampered.sock"))
    r = ftrust("enclave", "serve", config=tampered_config, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "sealed enclave-key does not open with this enclave's sealing key" in r.stderr
    assert "Traceback" not in r.stderr
    code, doc = model.call(A)  # the genuine enclave still works
    assert code == 0 and doc["status"] == 200
