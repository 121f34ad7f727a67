"""Challenge nonces as authenticated tokens (manager/nonces.py), attacked for real over HTTPS.

Issuing a nonce writes nothing: the VM recognises its own nonces by their MAC (under a key derived
from the CA key) and spends each one by inserting its row in the transaction that records the
decision. So every attack on the challenge is about that token: forging one, altering a genuine one
(its expiry, purpose, host or VNF), presenting it late, for another purpose, or twice, also at once.
Each is refused with its reason and leaves no row behind (pushed evidence that proves nothing is
recorded nowhere).
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import requests

from floodlight_trust.manager.nonces import Nonces
from tests.support.attacks import count, post, table_sizes
from tests.support.world import Host, World


def ask(world: World, purpose: str, host: str, vnf: str | None = None) -> bytes:
    body = {"purpose": purpose, "host": host} | ({"vnf": vnf} if vnf is not None else {})
    r = post(world, "/v1/nonces", body)
    assert r.status_code == 200, r.text
    return bytes.fromhex(r.json()["nonce"])


def trusted_host(world: World, *vnfs: str) -> Host:
    host = world.start_host()
    for vnf in vnfs:
        host.add_vnf(vnf)
    assert world.admin.attest(host.name)["trusted"]
    return host


def refused(world: World, evidence: dict[str, Any], reason: str) -> None:
    """Pushed enclave evidence refused (403) for ``reason`` and recorded nowhere."""
    before = table_sizes(world)
    r = post(world, "/v1/enroll", evidence)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert "proves nothing" in error["message"] and reason in error["message"], error
    assert error["reasons"][0]["rule"] == "protocol.nonce", error
    assert table_sizes(world) == before


def flip(nonce: bytes, index: int, mask: int = 0x01) -> bytes:
    return nonce[:index] + bytes((nonce[index] ^ mask,)) + nonce[index + 1 :]


def test_forged_and_altered_nonces_are_refused_and_recorded_nowhere(world: World) -> None:
    host = trusted_host(world, "vnf-fw-n1", "vnf-fw-n2")
    other = trusted_host(world)
    genuine = ask(world, "enclave", host.name, "vnf-fw-n1")
    another_key = Nonces(world.service.vm.storage, ttl_seconds=30, key=lambda: secrets.token_bytes(32))
    forgeries = {
        "random bytes": secrets.token_bytes(32),
        "the same layout under another key": another_key.issue(
            "enclave", host.name, "vnf-fw-n1", at=world.clock.now()
        ).value,
        "expiry moved later": flip(genuine, 7),
        "random part changed": flip(genuine, 12),
        "MAC changed": flip(genuine, 31),
        "VNF binding bit cleared": flip(genuine, 0, 0x08),
        "purpose changed to host": flip(genuine, 0, 0x03),
    }
    for what, nonce in forgeries.items():
        assert nonce != genuine, what
        refused(world, host.agent.enclave_evidence("vnf-fw-n1", nonce), "nonce unknown")
    # A genuine nonce, presented for another VNF of the same host or for another host's VNF.
    refused(world, host.agent.enclave_evidence("vnf-fw-n2", genuine), "nonce unknown")
    evidence = host.agent.enclave_evidence("vnf-fw-n1", ask(world, "enclave", other.name))
    refused(world, evidence, "nonce unknown")
    # None of the above spent the genuine nonce: it still enrolls its own VNF, once.
    r = post(world, "/v1/enroll", host.agent.enclave_evidence("vnf-fw-n1", genuine))
    assert r.status_code == 200 and r.json()["allowed"], r.text


def test_a_nonce_for_host_evidence_does_not_answer_enclave_evidence(world: World) -> None:
    host = trusted_host(world, "vnf-fw-p1")
    nonce = ask(world, "host", host.name)
    refused(world, host.agent.enclave_evidence("vnf-fw-p1", nonce), "issued for host evidence, not enclave evidence")


def test_an_expired_nonce_is_refused_and_recorded_nowhere(world: World) -> None:
    host = trusted_host(world, "vnf-fw-e1")
    nonce = ask(world, "enclave", host.name, "vnf-fw-e1")
    evidence = host.agent.enclave_evidence("vnf-fw-e1", nonce)
    world.clock.offset = world.service.vm.nonces.ttl
    try:
        refused(world, evidence, "nonce expired")
    finally:
        world.clock.offset = timedelta()


def test_a_replayed_enrollment_is_refused_and_issues_nothing(world: World) -> None:
    host = trusted_host(world, "vnf-fw-r1")
    evidence = host.agent.enclave_evidence("vnf-fw-r1", ask(world, "enclave", host.name, "vnf-fw-r1"))
    r = post(world, "/v1/enroll", evidence)
    assert r.status_code == 200 and r.json()["allowed"], r.text
    certificates = count(world, "SELECT COUNT(*) FROM pki_certificates")
    refused(world, evidence, "nonce replayed")
    assert count(world, "SELECT COUNT(*) FROM pki_certificates") == certificates


def test_concurrent_replays_of_one_nonce_enroll_once(world: World) -> None:
    """Eight copies of one answer at once: they all pass the look-up before any is spent, and the
    insert of the spent nonce in each decision's transaction lets exactly one through."""
    host = trusted_host(world, "vnf-fw-c1")
    evidence = host.agent.enclave_evidence("vnf-fw-c1", ask(world, "enclave", host.name, "vnf-fw-c1"))
    certificates = count(world, "SELECT COUNT(*) FROM pki_certificates")
    start = threading.Barrier(8)
    answers: list[requests.Response] = []

    def send() -> None:
        start.wait()
        answers.append(post(world, "/v1/enroll", evidence))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 8
    allowed = [a for a in answers if a.status_code == 200 and a.json()["allowed"]]
    assert len(allowed) == 1, [a.text for a in answers]
    for a in answers:
        if a is not allowed[0]:
            assert "nonce replayed" in a.text, a.text
            assert a.status_code in (200, 403), a.text
    assert count(world, "SELECT COUNT(*) FROM pki_certificates") == certificates + 1
