"""Issue 8: continuous re-attestation, short-lived certificates renewed each round, revocation."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import requests
from cryptography import x509

from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.manager.reattest import ReattestScheduler
from tests.support.world import HOST_FILES, Host, World


def append_entry(host: Host, path: str, digest: bytes) -> None:
    with host.ima_file.open("ab") as fh:
        fh.write(format_ascii_line(make_entry(path, digest), "sha1").encode())


def published_crl(world: World) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(requests.get(f"{world.service.publish.url}/crl.der", timeout=10).content)


def on_crl(world: World, serial: str) -> bool:
    return published_crl(world).get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def enrolled_host(world: World, *vnfs: str) -> Host:
    host = world.start_host()
    for vnf in vnfs:
        host.add_vnf(vnf)
        assert world.admin.enroll(host.name, vnf)["allowed"]
    return host


def test_a_round_renews_the_certificate_for_the_same_key_and_supersedes_the_old_one(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-renew")
    enclave = host.backend.enclave("vnf-fw-renew")
    [first] = [e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-renew"]
    doc = world.admin.reattest(host.name)
    [h] = doc["hosts"]
    assert h["trusted"] and h["revoked_serials"] == [] and set(h["renewed"]) == {"vnf-fw-renew"}
    new_serial = h["renewed"]["vnf-fw-renew"]
    assert new_serial != first["serial"]
    records = {e["serial"]: e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-renew"}
    assert records[first["serial"]]["status"] == "superseded"
    assert records[first["serial"]]["superseded_by"] == new_serial
    assert records[first["serial"]]["revoked_at"] is None  # superseded, not revoked
    assert records[new_serial]["status"] == "active"
    assert records[new_serial]["public_key_sha256"] == first["public_key_sha256"]  # same enclave key
    # The agent holds the new certificate; it is short-lived (the enroll rule's 1 h).
    assert enclave.credentials is not None
    assert enclave.credentials.certificate_sha256 == records[new_serial]["certificate_sha256"]
    leaf = x509.load_pem_x509_certificate(enclave.credentials.chain_pem[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=1, minutes=6)
    assert not on_crl(world, first["serial"])
    audit = [a for a in world.admin.audit() if a["vnf"] == "vnf-fw-renew" and a["actor"] == "reattest"]
    assert audit and audit[0]["action"] == "enroll" and audit[0]["allowed"]


def test_an_unknown_file_revokes_every_certificate_of_every_vnf_on_the_host_at_once(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-x1", "vnf-fw-x2")
    world.admin.reattest(host.name)  # renew: the superseded certificates must be revoked too
    live = [e["serial"] for e in world.admin.enrollments() if e["host"] == host.name]
    assert len(live) == 4
    generation = world.service.publisher.generation
    append_entry(host, "/usr/bin/dropper", b"\x02" * 32)
    doc = world.admin.reattest(host.name)
    [h] = doc["hosts"]
    assert not h["trusted"] and "/usr/bin/dropper" in " ".join(r["message"] for r in h["reasons"])
    assert sorted(h["revoked_serials"]) == sorted(live) and h["renewed"] == {}
    assert world.service.publisher.generation == generation + 1  # one transaction, one republication
    assert all(on_crl(world, s) for s in live)
    revoke = [a for a in world.admin.audit() if a["action"] == "revoke" and a["host"] == host.name]
    assert len(revoke) == 1 and revoke[0]["actor"] == "reattest"
    assert "/usr/bin/dropper" in revoke[0]["reasons"][0]["message"]
    assert sorted(revoke[0]["evidence"]["serials"]) == sorted(live)
    assert {v["status"] for v in world.admin.vnfs() if v["host"] == host.name} == {"revoked"}
    # An untrusted host is no longer re-attested by the loop.
    assert host.name not in world.service.scheduler.hosts_due()


def test_rounds_are_incremental_resume_after_a_restart_and_refuse_a_changed_prefix(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-inc")
    vm = world.service.vm
    first = world.admin.reattest(host.name)["hosts"][0]
    assert first["trusted"] and first["ima_entries"] == len(HOST_FILES)
    append_entry(host, "/usr/bin/containerd", HOST_FILES["/usr/bin/containerd"])  # a known file, again
    second = world.admin.reattest(host.name)["hosts"][0]
    assert second["trusted"] and second["ima_entries"] == len(HOST_FILES) + 1
    vm.host_attestation._ima_states.clear()  # what a VM restart loses: it resumes from the state persisted with the host
    append_entry(host, "/etc/ftrust/agent.toml", HOST_FILES["/etc/ftrust/agent.toml"])
    third = world.admin.reattest(host.name)["hosts"][0]
    assert third["trusted"] and third["ima_entries"] == len(HOST_FILES) + 2
    # Only the tail travelled: the VM continued the SHA-256 state persisted with the host.
    ima = [a["evidence"] for a in world.admin.audit() if a["action"] == "attest-host" and a["host"] == host.name][-1]
    assert 0 < ima["ima_offset"] and ima["ima_bytes_sent"] == ima["ima_list_bytes"] - ima["ima_offset"]
    serials = [e["serial"] for e in world.admin.enrollments() if e["host"] == host.name]
    # Rewrite an entry appraised in an earlier round (same length: only the digest changes).
    text = host.ima_file.read_text()
    good = hashlib.sha256(b"containerd").hexdigest()
    host.ima_file.write_text(text.replace(good, hashlib.sha256(b"Containerd").hexdigest(), 1))
    fourth = world.admin.reattest(host.name)["hosts"][0]
    assert not fourth["trusted"]
    denials = [r for r in fourth["reasons"] if r["level"] == "deny"]
    assert [r["rule"] for r in denials] == ["ima.prefix"]
    # Since the restart the VM holds the prefix only by its SHA-256: the change is found, not located.
    assert "appraised before have changed" in denials[0]["message"]
    # The integrity enclave's "simulated SGX accepted" note stays with the verdict, marked as a note.
    assert [r["rule"] for r in fourth["reasons"] if r["level"] == "note"] == ["integrity-enclave: simulated"]
    assert sorted(fourth["revoked_serials"]) == sorted(serials)


def test_an_unreachable_host_is_revoked_only_past_the_grace_period(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-gone")
    serial = next(e["serial"] for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-gone")
    host.server.stop()
    within = world.admin.reattest(host.name)["hosts"][0]
    assert not within["trusted"] and within["revoked_serials"] == []
    assert "within the grace period" in within["reasons"][0]["message"]
    assert not on_crl(world, serial)
    world.clock.offset += timedelta(seconds=world.service.vm.grace.total_seconds() + 1)
    try:
        past = world.admin.reattest(host.name)["hosts"][0]
    finally:
        world.clock.offset -= timedelta(seconds=world.service.vm.grace.total_seconds() + 1)
    assert "past the grace period" in past["reasons"][0]["message"]
    assert past["revoked_serials"] == [serial] and on_crl(world, serial)


def test_a_vnf_whose_enclave_no_longer_matches_is_revoked_by_the_next_round(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-swap", "vnf-fw-keep")
    serial = next(e["serial"] for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-swap")
    host.backend.add_enclave("vnf-fw-swap", b"a different firewall build\n")  # same name, other code
    [h] = world.admin.reattest(host.name)["hosts"]
    assert h["trusted"] and set(h["renewed"]) == {"vnf-fw-keep"}
    assert "mrenclave" in " ".join(r["message"] for r in h["refused"]["vnf-fw-swap"]).lower()
    assert serial in h["revoked_serials"] and on_crl(world, serial)


def test_the_loop_runs_on_its_own_and_stops_cleanly(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-loop")
    serial = next(e["serial"] for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-loop")
    scheduler = ReattestScheduler(world.service.vm, interval_seconds=0.2).start()
    try:
        assert scheduler.running
        append_entry(host, "/tmp/payload", b"\x03" * 32)
        deadline = time.monotonic() + 30
        while not on_crl(world, serial) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert on_crl(world, serial)
    finally:
        scheduler.stop()
    assert not scheduler.running and scheduler.rounds >= 1
    rounds = scheduler.rounds
    time.sleep(0.5)
    assert scheduler.rounds == rounds  # stopped means stopped
    status = world.admin.reattest_status()
    assert status["interval_seconds"] == 0 and status["running"] is False  # the service's own loop is off here
