"""Issue 11.3: one hostile agent must not stop re-attestation for everyone.

Before: a lone surrogate in returned collateral raised UnicodeEncodeError, deeply nested JSON raised
RecursionError, reattest.py caught only FtrustError, so every round aborted, a host with an unknown
binary stayed trusted and hosts sorted after the hostile one were never re-attested. Now every
failure while judging one host, of any type, is contained to that host: recorded in the audit log,
counted toward its grace period, its VNFs revoked past it; the round goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from floodlight_trust.agent.backends.sim import SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, make_app
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.http.server import HttpServer, JsonApp, RawResponse, Request
from floodlight_trust.sgxsim import SimulatedPlatform
from tests.support.world import GOOD_IMAGE, HOST_FILES, World, ima_list


@dataclass
class HostileAgent:
    """A real sim agent that, once ``mode`` is set, answers host challenges with crafted bytes."""

    name: str
    server: HttpServer
    enclave: EnclaveRuntime
    mode: str | None = None


def crafted(agent: Agent, mode: str, request: Request) -> RawResponse:
    doc = agent.host_evidence(bytes.fromhex(request.json()["nonce"]))
    if mode == "surrogate":
        doc["collateral"]["tcb_info"] = "\ud800"
        body = json.dumps(doc).encode()
    elif mode == "nesting":
        body = b'{"host": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    elif mode == "huge-integer":
        body = json.dumps(doc).replace('"ima_offset": 0', '"ima_offset": ' + "7" * 5000).encode()
    else:
        raise AssertionError(mode)
    return RawResponse(200, "application/json", body)


@pytest.fixture
def hostile(deployment: World) -> Iterator[HostileAgent]:
    name = deployment.unique("host-000-hostile")  # sorted before every other host: the round goes on after it
    ima = deployment.tmp / f"{name}.ima"
    ima.write_bytes(ima_list(HOST_FILES))
    machine = SimulatedPlatform.create(deployment.tmp / f"{name}-platform", authority=deployment.platforms[0])  # its own PCK
    backend = SimBackend(machine, vm_ca=deployment.ca.certificate)
    enclave = backend.add_enclave("vnf-fw-hostile", GOOD_IMAGE)
    agent = Agent(name, backend, ImaSource(None, ima))
    real = make_app(agent)
    app = JsonApp(name="hostile-agent")
    holder: list[HostileAgent] = []

    @app.route("POST", "/v1/host/evidence")
    def host_evidence(request: Request) -> Any:
        mode = holder[0].mode
        return real.handle(request) if mode is None else crafted(agent, mode, request)

    for method, pattern in real.route_patterns():
        if pattern != "/v1/host/evidence":
            app.route(method, pattern)(lambda request, **_: real.handle(request))
    server = HttpServer(app, host="127.0.0.1", port=0, name="agent").start()
    holder.append(HostileAgent(name, server, enclave))
    deployment.admin.add_host(name, server.url)
    deployment.admin.add_vnf(name, "vnf-fw-hostile")
    try:
        yield holder[0]
    finally:
        server.stop()
        deployment.clock.offset = type(deployment.clock.offset)()


def round_of(world: World) -> dict[str, dict[str, Any]]:
    report = world.admin.reattest()  # POST /v1/admin/reattest over HTTPS: 200, never a 500
    return {h["host"]: h for h in report["hosts"]}


@pytest.mark.parametrize("mode", ["surrogate", "nesting", "huge-integer"])
def test_a_hostile_agent_is_contained_and_revoked_past_its_grace_period(
    deployment: World, hostile: HostileAgent, mode: str
) -> None:
    good = deployment.start_host()
    good.add_vnf("vnf-fw-good")
    for host, vnf in ((hostile.name, "vnf-fw-hostile"), (good.name, "vnf-fw-good")):
        assert deployment.admin.enroll(host, vnf)["allowed"]

    hostile.mode = mode
    first = round_of(deployment)
    assert first[hostile.name]["trusted"] is False
    reason = first[hostile.name]["reasons"][0]
    assert reason["rule"] in ("agent.unreachable", "host.judging_failed")
    assert "within the grace period" in reason["message"] and "\n" not in reason["message"]
    assert first[hostile.name]["revoked_serials"] == []  # within the grace period: nothing revoked yet
    assert first[good.name]["trusted"] is True  # the host after it was re-attested in the same round
    audit = [r for r in deployment.admin.audit() if r["host"] == hostile.name and r["action"] == "attest-host"]
    assert audit[-1]["allowed"] is False and audit[-1]["reasons"][0]["rule"] == reason["rule"]

    deployment.clock.offset += type(deployment.clock.offset)(seconds=deployment.service.vm.grace.total_seconds() + 5)
    second = round_of(deployment)
    assert second[hostile.name]["revoked_serials"], second[hostile.name]
    assert "past the grace period" in second[hostile.name]["reasons"][0]["message"]
    assert second[good.name]["trusted"] is True and not second[good.name]["revoked_serials"]
    states = {e["vnf"]: e["status"] for e in deployment.admin.enrollments() if e["host"] == hostile.name}
    assert set(states.values()) == {"revoked"}, states


def test_a_failure_of_any_type_in_a_judge_is_contained(
    deployment: World, hostile: HostileAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection for what no fixed parser can show any more: a RecursionError (and a plain
    bug) raised inside the host judge for one host only."""
    from floodlight_trust.judges import host as judge

    original = judge.appraise_host_ima

    def failing(policy: Any, host_policy: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == hostile.name:
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON object")
        return original(policy, host_policy, name, *args, **kwargs)

    good = deployment.start_host()
    assert deployment.admin.attest(hostile.name)["trusted"] and deployment.admin.attest(good.name)["trusted"]
    monkeypatch.setattr(judge, "appraise_host_ima", failing)
    rounds = round_of(deployment)
    assert rounds[hostile.name]["trusted"] is False
    assert rounds[hostile.name]["reasons"][0]["rule"] == "host.judging_failed"
    assert "RecursionError" in rounds[hostile.name]["reasons"][0]["message"]
    assert rounds[good.name]["trusted"] is True
    metrics = requests.get(
        deployment.service.api_url + "/metrics", verify=str(deployment.service.tls_certificate), timeout=10
    ).text
    assert 'ftrust_reattest_host_failures_total{error="RecursionError"}' in metrics
