"""Issue 11, item 7 (unauthenticated state growth), attacked for real over HTTPS.

What once worked: nonces were never purged; 500 garbage posts with new names created 500 host rows
and 500 audit records; one garbage push reset a host's incremental IMA offset to 0.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from tests.support.attacks import count, post, table_sizes, unauthenticated_rejects
from tests.support.world import World

GARBAGE_POSTS = 200  # bounded; each is a real HTTPS request


def garbage_host_evidence(host: str, nonce_hex: str) -> dict:  # type: ignore[type-arg]
    return {
        "host": host,
        "nonce": nonce_hex,
        "evidence_type": "DCAP",
        "quote": base64.b64encode(b"\x03\x00" + b"garbage" * 80).decode(),
        "collateral": None,
        "ima_list": base64.b64encode(b"10 " + b"0" * 40 + b" ima-ng sha256:00 boot_aggregate\n").decode(),
    }


def test_garbage_under_new_names_creates_no_rows_and_is_counted(world: World) -> None:
    before = table_sizes(world)
    counted = unauthenticated_rejects("/v1/attest/host", "host.unregistered")
    for i in range(GARBAGE_POSTS):
        r = post(world, "/v1/attest/host", garbage_host_evidence(f"garbage-{i}", "00" * 32))
        assert r.status_code == 404, r.text
    assert table_sizes(world) == before
    assert unauthenticated_rejects("/v1/attest/host", "host.unregistered") == counted + GARBAGE_POSTS


def test_garbage_for_a_registered_host_is_refused_recorded_nowhere_and_keeps_its_ima_offset(world: World) -> None:
    host = world.start_host()
    assert world.admin.attest(host.name)["trusted"]
    vm = world.service.vm
    offset = vm.host_attestation.ima_offset(host.name)
    assert offset > 0  # the next round asks only for the tail
    before = table_sizes(world)
    counted = unauthenticated_rejects("/v1/attest/host", "sgx.collateral")
    for _ in range(20):
        nonce = post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).json()["nonce"]
        r = post(world, "/v1/attest/host", garbage_host_evidence(host.name, nonce))
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert "proves nothing" in error["message"] and error["reasons"][0]["rule"] == "sgx.collateral"
    after = table_sizes(world)
    assert after["manager_audit"] == before["manager_audit"]
    assert after["manager_hosts"] == before["manager_hosts"]
    assert unauthenticated_rejects("/v1/attest/host", "sgx.collateral") == counted + 20
    # Each garbage nonce was spent (its one row: nonces are not stored when issued), so it cannot be retried.
    assert after["manager_nonces"] == before["manager_nonces"] + 20
    r = post(world, "/v1/attest/host", garbage_host_evidence(host.name, nonce))
    assert r.status_code == 403 and "nonce replayed" in r.json()["error"]["message"], r.text
    # The host's state is where its last verified quote left it: same offset, still trusted, and
    # the next round transfers only the tail.
    assert vm.host_attestation.ima_offset(host.name) == offset
    [row] = vm.storage.query("SELECT status, ima_entries FROM manager_hosts WHERE name = ?", (host.name,))
    assert row["status"] == "trusted"
    verdict = world.admin.attest(host.name)
    assert verdict["trusted"]
    last = [a for a in world.admin.audit() if a["host"] == host.name and a["action"] == "attest-host"][-1]
    assert last["evidence"]["ima_offset"] == offset


def test_a_replayed_genuine_quote_is_refused_and_recorded_nowhere(world: World) -> None:
    host = world.start_host()
    nonce = bytes.fromhex(post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).json()["nonce"])
    evidence = host.agent.host_evidence(nonce)
    assert post(world, "/v1/attest/host", evidence).json()["trusted"]
    audited = count(world, "SELECT COUNT(*) FROM manager_audit WHERE host = ?", host.name)
    r = post(world, "/v1/attest/host", evidence)
    assert r.status_code == 403 and "nonce replayed" in r.json()["error"]["message"]
    assert count(world, "SELECT COUNT(*) FROM manager_audit WHERE host = ?", host.name) == audited


def test_issuing_nonces_writes_nothing_and_spent_ones_are_purged(world: World) -> None:
    host = world.start_host()
    before = table_sizes(world)
    for _ in range(30):
        assert post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).status_code == 200
    assert table_sizes(world) == before  # a nonce is an authenticated token: nothing to store until spent
    spent = count(world, "SELECT COUNT(*) FROM manager_nonces WHERE host = ?", host.name)
    for _ in range(3):
        nonce = bytes.fromhex(post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).json()["nonce"])
        assert post(world, "/v1/attest/host", host.agent.host_evidence(nonce)).json()["trusted"]
    assert count(world, "SELECT COUNT(*) FROM manager_nonces WHERE host = ?", host.name) == spent + 3
    ttl = world.service.vm.nonces.ttl
    world.clock.offset = 2 * ttl + timedelta(seconds=1)  # every nonce above is a TTL past its expiry
    try:
        nonce = bytes.fromhex(post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).json()["nonce"])
        assert post(world, "/v1/attest/host", host.agent.host_evidence(nonce)).json()["trusted"]
        # The spend purged the others (at most once per TTL, in the same write): only its own row is left.
        assert count(world, "SELECT COUNT(*) FROM manager_nonces WHERE host = ?", host.name) == 1
        assert (
            count(
                world,
                "SELECT COUNT(*) FROM manager_nonces WHERE expires_at < ?",
                world.clock.now().timestamp() - ttl.total_seconds(),
            )
            == 0
        )
    finally:
        world.clock.offset = timedelta()
