"""VM -> agent over HTTPS: the agent serves TLS with its own certificate, the VM pins it per host."""

from __future__ import annotations

from tests.support.tls import self_signed
from tests.support.world import World, start_tls_agent


def test_vm_reaches_an_https_agent_through_its_pinned_certificate(world: World) -> None:
    agent = start_tls_agent(world, ("vnf-fw-tls",), register=False, prefix="tls-host")
    name, server, pem = agent.name, agent.server, agent.certificate_pem
    try:
        assert server.url.startswith("https://")
        world.admin.add_host(name, server.url, agent_certificate=pem)
        world.admin.add_vnf(name, "vnf-fw-tls")
        verdict = world.admin.attest(name)
        assert verdict["trusted"], verdict["reasons"]
        doc = world.admin.enroll(name, "vnf-fw-tls")
        assert doc["allowed"], doc["reasons"]
    finally:
        server.stop()


def test_an_agent_with_another_certificate_than_the_pinned_one_is_not_trusted(world: World) -> None:
    agent = start_tls_agent(world, ("vnf-fw-tls",), register=False, prefix="tls-host")
    name, server = agent.name, agent.server
    _, _, other_pem = self_signed(world.tmp, "someone-else")
    try:
        world.admin.add_host(name, server.url, agent_certificate=other_pem)
        verdict = world.admin.attest(name)
        assert not verdict["trusted"]
        assert any(r["rule"] == "agent.unreachable" and "TLS" in r["message"] for r in verdict["reasons"]), verdict
    finally:
        server.stop()
