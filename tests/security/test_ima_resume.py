"""Tail-only IMA rounds after a VM restart (docs/protocol.md, "Incremental IMA transfer"): the VM
continues the SHA-256 state saved with the host's appraisal state, so a hostile agent must gain
nothing from it. Each attack runs against a real `ftrust vm serve` (its admin API over HTTPS,
SIGKILLed and started again in between), its agent a real one over HTTP on loopback whose answers
the attack rewrites; the refusal is asserted by reason code, verdict, audit rows and revocation.

- an agent claiming a prefix the VM never verified (another offset than the one it was asked from);
- a tail that does not extend the persisted state (the host's list rewritten before the offset);
- a tail the quote does not bind (entries swapped in the tail sent);
- a replayed tail (an earlier round's answer, nonce and quote included).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from floodlight_trust.agent.service import make_app
from floodlight_trust.http.server import HttpServer, JsonApp, Request
from floodlight_trust.manager.client import VmClient
from tests.support.deployment import Deployment
from tests.support.world import GOOD_IMAGE, HOST_FILES, policy_text

HOST, VNF = "resume-host", "vnf-fw-resume"
EVIL = hashlib.sha256(b"dropper").digest()

Rewrite = Callable[[Request, dict[str, Any]], dict[str, Any]]


class AgentUnderAttack:
    """The host's real agent behind an HTTP front that lets a test rewrite its host evidence; it
    records every challenge (nonce, offset) and every answer."""

    def __init__(self, deployment: Deployment):
        deployment.add_host(HOST, HOST_FILES, VNF, image=GOOD_IMAGE)
        self.agent = deployment.agents[HOST].agent
        self.real = make_app(self.agent)
        self.rewrite: Rewrite | None = None
        self.asked: list[int] = []
        self.answers: list[dict[str, Any]] = []
        app = JsonApp(name="agent-under-attack")
        app.route("POST", "/v1/host/evidence")(self._host_evidence)
        for method, pattern in self.real.route_patterns():
            if pattern != "/v1/host/evidence":
                app.route(method, pattern)(lambda request, **_: self.real.handle(request))
        self.server = HttpServer(app, host="127.0.0.1", port=0, name="agent").start()
        deployment.servers[HOST] = self.server  # stopped by deployment.close()

    def _host_evidence(self, request: Request) -> Any:
        body = request.json()
        self.asked.append(int(body.get("ima_offset", 0)))
        doc = dict(self.agent.host_evidence(bytes.fromhex(body["nonce"]), int(body.get("ima_offset", 0))))
        if self.rewrite is not None:
            doc = self.rewrite(request, doc)
        self.answers.append(doc)
        return doc


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path, policy_text())
    try:
        yield d
    finally:
        d.close()


def append(deployment: Deployment, path: str, digest: bytes) -> None:
    from tests.support.world import ima_list

    with deployment.ima_files[HOST].open("ab") as fh:
        fh.write(ima_list({path: digest}))


def restarted(deployment: Deployment, admin: VmClient | None) -> VmClient:
    """SIGKILL `vm serve` (no cleanup) and start it again on the same state."""
    if admin is not None:
        admin.close()
    deployment.kill_vm()
    return deployment.start_vm("--reattest-interval", "0")


def persisted(deployment: Deployment) -> dict[str, Any]:
    [row] = deployment.rows(f"SELECT status, ima_entries, ima_state_json FROM manager_hosts WHERE name = '{HOST}'")
    return {"status": row["status"], "entries": row["ima_entries"], "state": json.loads(row["ima_state_json"] or "null")}


def host_audit(admin: VmClient) -> list[dict[str, Any]]:
    return [a for a in admin.audit() if a["host"] == HOST and a["action"] == "attest-host"]


def revoked(admin: VmClient, serial: int) -> bool:
    return any(e["serial"] == serial and e["status"] == "revoked" for e in admin.enrollments())


def enrolled(deployment: Deployment) -> tuple[AgentUnderAttack, VmClient, int]:
    """The host registered, attested and its VNF enrolled; then the VM restarted and one honest
    tail-only round (so the state resumed from is one a restarted VM saved). Returns the serial."""
    agent = AgentUnderAttack(deployment)
    admin = deployment.start_vm("--reattest-interval", "0")
    admin.add_host(HOST, agent.server.url)
    admin.add_vnf(HOST, VNF)
    assert admin.attest(HOST)["trusted"]
    serial = admin.enroll(HOST, VNF)["serial"]
    admin = restarted(deployment, admin)
    append(deployment, "/usr/bin/containerd", HOST_FILES["/usr/bin/containerd"])
    before = persisted(deployment)["state"]["byte_length"]
    assert admin.attest(HOST)["trusted"]
    assert agent.asked[-1] == before > 0  # tail only, continued from the saved SHA-256 state
    # ... and bound to exactly the list appraised: the whole list's SHA-256 is the saved state's.
    whole = deployment.ima_files[HOST].read_bytes()
    state = persisted(deployment)
    assert state["status"] == "trusted" and state["entries"] == len(HOST_FILES) + 1
    assert state["state"]["prefix_sha256"] == hashlib.sha256(whole).hexdigest()
    last = host_audit(admin)[-1]["evidence"]
    assert last["ima_list_sha256"] == hashlib.sha256(whole).hexdigest() and last["ima_offset"] == before
    assert last["ima_bytes_sent"] == len(whole) - before and not revoked(admin, serial)
    return agent, admin, serial


def test_an_agent_claiming_a_prefix_the_vm_never_verified_is_refused(deployment: Deployment) -> None:
    agent, admin, serial = enrolled(deployment)
    admin = restarted(deployment, admin)
    append(deployment, "/usr/bin/ftrust-agent", HOST_FILES["/usr/bin/ftrust-agent"])
    at = persisted(deployment)["state"]["byte_length"]
    audited = len(host_audit(admin))

    def other_offset(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
        # A genuine quote over the real list, sent from an offset the VM did not ask from (as if it
        # held a longer verified prefix than it does): the VM would appraise fewer entries.
        return dict(agent.agent.host_evidence(bytes.fromhex(doc["nonce"]), at + 20))

    agent.rewrite = other_offset
    verdict = admin.attest(HOST)
    assert verdict["trusted"] is False
    rules = [r["rule"] for r in verdict["reasons"] if r["level"] == "deny"]
    assert rules == ["protocol.ima_offset"], verdict["reasons"]
    assert agent.asked[-1] == at  # the VM asked from its saved state, not from where the agent claimed
    assert len(host_audit(admin)) == audited + 1 and host_audit(admin)[-1]["allowed"] is False
    assert persisted(deployment)["status"] == "untrusted" and revoked(admin, serial)

    # The same claim pushed to the agent-facing endpoint proves nothing: 403, recorded nowhere.
    tls = str(deployment.config.state_dir / "vm-tls" / "server.pem")
    nonce = requests.post(
        deployment.url + "/v1/nonces", json={"purpose": "host", "host": HOST}, verify=tls, timeout=30
    ).json()["nonce"]
    pushed = dict(agent.agent.host_evidence(bytes.fromhex(nonce), at + 20))
    r = requests.post(deployment.url + "/v1/attest/host", json=pushed, verify=tls, timeout=30)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert "proves nothing" in error["message"] and error["reasons"][0]["rule"] == "protocol.ima_offset"
    assert len(host_audit(admin)) == audited + 1
    admin.close()


def test_a_tail_that_does_not_extend_the_saved_state_is_refused_by_the_binding(deployment: Deployment) -> None:
    """The host's list was rewritten before the offset (an entry appraised before now measures
    something else) and then grew: the tail, extended from the saved state, does not hash to what
    the quote binds. The VM records nothing for it, asks for the whole list with a fresh nonce and
    finds the changed prefix."""
    agent, admin, serial = enrolled(deployment)
    admin = restarted(deployment, admin)
    path = deployment.ima_files[HOST]
    good = HOST_FILES["/usr/bin/containerd"].hex()
    path.write_bytes(path.read_bytes().replace(good.encode(), EVIL.hex().encode(), 1))
    append(deployment, "/usr/bin/ftrust-agent", HOST_FILES["/usr/bin/ftrust-agent"])
    at = persisted(deployment)["state"]["byte_length"]
    audited = len(host_audit(admin))
    asked = len(agent.asked)
    verdict = admin.attest(HOST)
    assert verdict["trusted"] is False
    denials = [r for r in verdict["reasons"] if r["level"] == "deny"]
    assert [r["rule"] for r in denials] == ["ima.prefix"] and "have changed" in denials[0]["message"]
    assert agent.asked[asked:] == [at, 0]  # the tail did not bind: then the whole list, fresh nonce
    assert agent.answers[-1]["nonce"] != agent.answers[-2]["nonce"]
    assert len(host_audit(admin)) == audited + 1  # no record of the tail that did not bind
    assert host_audit(admin)[-1]["evidence"]["ima_offset"] == 0
    assert persisted(deployment)["status"] == "untrusted" and revoked(admin, serial)
    admin.close()


def test_a_tail_the_quote_does_not_bind_is_refused(deployment: Deployment) -> None:
    """The host measured an unknown file after the offset; its agent quotes the real list but sends
    a tail with that entry swapped for an allowed one (same length). The quote's binding over the
    saved state and the tail fails; so does the whole list the agent then rewrites the same way."""
    agent, admin, serial = enrolled(deployment)
    admin = restarted(deployment, admin)
    append(deployment, "/usr/bin/dropper", EVIL)
    honest = hashlib.sha256(b"innocent").digest()

    def swap(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
        sent = base64.b64decode(doc["ima_list"]).replace(EVIL.hex().encode(), honest.hex().encode())
        return doc | {"ima_list": base64.b64encode(sent).decode()}

    agent.rewrite = swap
    entries = persisted(deployment)["entries"]
    asked = len(agent.asked)
    verdict = admin.attest(HOST)
    assert verdict["trusted"] is False
    rules = [r["rule"] for r in verdict["reasons"] if r["level"] == "deny"]
    assert rules == ["protocol.binding"], verdict["reasons"]
    assert agent.asked[asked:] == [agent.asked[asked], 0] and agent.asked[asked] > 0
    after = persisted(deployment)
    assert after["status"] == "untrusted" and after["entries"] <= entries  # nothing of the forged tail appraised
    assert revoked(admin, serial)
    admin.close()


def test_a_replayed_tail_is_refused(deployment: Deployment) -> None:
    """The agent's answer to the first round after a restart (its nonce, quote and tail, all
    genuine) replayed at a later round after another restart: the nonce is spent and the offset is
    not the one asked, so nothing is appraised and nothing of the saved state moves."""
    agent, admin, serial = enrolled(deployment)
    recorded = agent.answers[-1]  # the honest tail-only answer enrolled() ended with
    admin = restarted(deployment, admin)
    append(deployment, "/usr/bin/ftrust-agent", HOST_FILES["/usr/bin/ftrust-agent"])
    before = persisted(deployment)
    agent.rewrite = lambda request, doc: recorded
    verdict = admin.attest(HOST)
    assert verdict["trusted"] is False
    rules = {r["rule"] for r in verdict["reasons"] if r["level"] == "deny"}
    assert "protocol.nonce" in rules, verdict["reasons"]
    after = persisted(deployment)
    assert after["state"] == before["state"] and after["entries"] == before["entries"]  # the state did not move
    assert after["status"] == "trusted" and not revoked(admin, serial)  # a stale answer demotes no one
    # The next honest round continues the saved state with the tail only.
    agent.rewrite = None
    again = admin.attest(HOST)
    assert again["trusted"] and agent.asked[-1] == before["state"]["byte_length"]
    assert persisted(deployment)["entries"] == before["entries"] + 1
    admin.close()
