"""Issue 8: `ftrust vm reload-policy [--dry-run]` re-evaluates every enrollment under the new policy."""

from __future__ import annotations

import hashlib

from floodlight_trust.sgxsim import measure_enclave_image
from tests.manager.test_reattest import enrolled_host, on_crl
from tests.support.cli import ftrust
from tests.support.world import ADMIN_KEY_ENV, GOOD_IMAGE, World, admin_args, policy_text

NEW_IMAGE = b"vnf-firewall enclave image: code v1.3 + config {rate: 100}\n"


def write_policy(world: World, text: str) -> None:
    (world.tmp / "site.policy").write_text(text)


def test_dry_run_shows_what_would_be_revoked_and_why_then_apply_revokes_in_one_transaction(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-r1", "vnf-fw-r2")
    serials = sorted(e["serial"] for e in world.admin.enrollments() if e["host"] == host.name)
    old_version = world.admin.request("GET", "/v1/health")["policy_version"]
    # The site moves to v1.3: v1.2's MRENCLAVE is no longer admitted.
    good, new = measure_enclave_image(GOOD_IMAGE).hex(), measure_enclave_image(NEW_IMAGE).hex()
    write_policy(world, policy_text().replace(good, new))
    try:
        dry = ftrust("vm", "reload-policy", "--dry-run", *admin_args(world), env=ADMIN_KEY_ENV)
        assert dry.returncode == 0, dry.stderr
        assert "(dry run: nothing changed)" in dry.stdout
        assert "vnf-fw-r1 on " + host.name + ": NOT ADMITTED" in dry.stdout
        assert "mrenclave" in dry.stdout.lower()
        assert dry.stdout.count("would revoke 1 certificate(s) of VNF") == 2
        assert world.admin.request("GET", "/v1/health")["policy_version"] == old_version
        assert all(e["status"] == "active" for e in world.admin.enrollments() if e["host"] == host.name)
        assert not any(on_crl(world, s) for s in serials)

        generation = world.service.publisher.generation
        doc = world.admin.reload_policy(dry_run=False)
        assert doc["applied"] and sorted(doc["revoked_serials"]) == serials
        assert world.service.publisher.generation == generation + 1  # republished once
        assert all(on_crl(world, s) for s in serials)
        assert world.admin.request("GET", "/v1/health")["policy_version"] == doc["new_policy_version"] != old_version
        audit = [a for a in world.admin.audit() if a["action"] == "reload-policy"]
        assert audit[0]["evidence"]["old_policy_version"] == old_version
        # The old image is now refused at enrollment too: the running service uses the new policy.
        again = world.admin.enroll(host.name, "vnf-fw-r1")
        assert not again["allowed"] and "mrenclave" in " ".join(r["message"] for r in again["reasons"]).lower()
    finally:
        write_policy(world, policy_text())
        world.admin.reload_policy(dry_run=False)


def test_a_host_whose_files_the_new_policy_no_longer_allows_loses_every_certificate(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-h1")
    serial = next(e["serial"] for e in world.admin.enrollments() if e["host"] == host.name)
    containerd = hashlib.sha256(b"containerd").hexdigest()
    write_policy(world, policy_text().replace(containerd, hashlib.sha256(b"containerd 2").hexdigest()))
    try:
        dry = world.admin.reload_policy(dry_run=True)
        [h] = [x for x in dry["hosts"] if x["host"] == host.name]
        assert not h["trusted"] and "/usr/bin/containerd" in " ".join(r["message"] for r in h["reasons"])
        [rev] = [r for r in dry["revocations"] if r["host"] == host.name]
        assert rev["vnf"] is None and rev["serials"] == [serial]
        assert not on_crl(world, serial)
        assert world.admin.hosts() and {x["name"]: x["status"] for x in world.admin.hosts()}[host.name] == "trusted"
        doc = world.admin.reload_policy(dry_run=False)
        assert serial in doc["revoked_serials"] and on_crl(world, serial)
        assert {x["name"]: x["status"] for x in world.admin.hosts()}[host.name] == "untrusted"
    finally:
        write_policy(world, policy_text())
        world.admin.reload_policy(dry_run=False)


def test_reload_with_an_unchanged_policy_revokes_nothing(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-same")
    doc = world.admin.reload_policy(dry_run=False)
    assert doc["revocations"] == [] and doc["revoked_serials"] == []
    assert all(v["allowed"] for v in doc["vnfs"] if v["host"] == host.name)


def test_reload_of_a_broken_policy_is_one_located_error_and_changes_nothing(world: World) -> None:
    old_version = world.admin.request("GET", "/v1/health")["policy_version"]
    write_policy(world, policy_text() + "\nenclave broken {\n")
    try:
        r = ftrust("vm", "reload-policy", *admin_args(world), env=ADMIN_KEY_ENV)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("ftrust: error: ") and "site.policy" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
        assert world.admin.request("GET", "/v1/health")["policy_version"] == old_version
    finally:
        write_policy(world, policy_text())


def test_cli_reattest_runs_a_round_and_names_the_renewals(world: World) -> None:
    host = enrolled_host(world, "vnf-fw-cli")
    r = ftrust("vm", "reattest", host.name, *admin_args(world), env=ADMIN_KEY_ENV)
    assert r.returncode == 0, r.stderr
    assert f"{host.name}: TRUSTED" in r.stdout and "renewed vnf-fw-cli: serial " in r.stdout
    unknown = ftrust("vm", "reattest", "no-such-host", *admin_args(world), env=ADMIN_KEY_ENV)
    assert unknown.returncode == 2 and "unknown host" in unknown.stderr and "Traceback" not in unknown.stderr
