"""Issue 11, item 1 (ghost hosts) and issue 18's host registration commands, attacked for real.

The attack that once worked: container-host-1's evidence relabelled as ``ghost-1`` created a
trusted host on the same platform and a certificate for vnf-a under it; when container-host-1 was
found compromised its own certificates were revoked, the ghost's stayed ``active`` and OCSP said
``good``. Now hosts exist only by an admin's registration, a platform belongs to one registered
host, and distrusting a host revokes every certificate issued on its platform.
"""

from __future__ import annotations

import json

from cryptography.x509 import ocsp

from floodlight_trust.sgxsim import SimulatedPlatform
from tests.support.attacks import count, crl_serials, ocsp_status, post, table_sizes, unauthenticated_rejects
from tests.support.world import World, vm_cli


def test_relabelled_evidence_for_an_unregistered_ghost_is_refused_and_leaves_no_row(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-ghost")
    assert world.admin.attest(host.name)["trusted"]
    before = table_sizes(world)
    rejected = unauthenticated_rejects("/v1/nonces", "host.unregistered")

    # 1. A nonce for the ghost's name: refused, no nonce row.
    r = post(world, "/v1/nonces", {"purpose": "host", "host": "ghost-1"})
    assert r.status_code == 404, r.text
    assert "'ghost-1' is not registered" in r.json()["error"]["message"]

    # 2. The real host's evidence (fresh nonce of the real host), relabelled as the ghost.
    nonce = bytes.fromhex(post(world, "/v1/nonces", {"purpose": "host", "host": host.name}).json()["nonce"])
    evidence = host.agent.host_evidence(nonce)
    evidence["host"] = "ghost-1"
    r = post(world, "/v1/attest/host", evidence)
    assert r.status_code == 404, r.text
    assert "host 'ghost-1' is not registered" in r.json()["error"]["message"]

    # 3. Enclave evidence in the ghost's name: refused the same way.
    enclave_nonce = bytes.fromhex(
        post(world, "/v1/nonces", {"purpose": "enclave", "host": host.name, "vnf": "vnf-fw-ghost"}).json()["nonce"]
    )
    vnf_evidence = host.agent.enclave_evidence("vnf-fw-ghost", enclave_nonce)
    vnf_evidence["host"] = "ghost-1"
    r = post(world, "/v1/enroll", vnf_evidence)
    assert r.status_code == 404, r.text

    after = table_sizes(world)
    assert count(world, "SELECT COUNT(*) FROM manager_hosts WHERE name = 'ghost-1'") == 0
    assert count(world, "SELECT COUNT(*) FROM manager_nonces WHERE host = 'ghost-1'") == 0
    assert count(world, "SELECT COUNT(*) FROM manager_audit WHERE host = 'ghost-1'") == 0
    assert count(world, "SELECT COUNT(*) FROM pki_certificates WHERE subject LIKE '%ghost%'") == 0
    # Nothing was written: no audit, host, VNF or certificate row, and no nonce row (issuing a nonce
    # writes nothing; evidence whose host is not registered spends none).
    assert after == before
    assert unauthenticated_rejects("/v1/nonces", "host.unregistered") == rejected + 1
    assert unauthenticated_rejects("/v1/attest/host", "host.unregistered") >= 1


def test_a_second_registered_host_presenting_a_pinned_platform_is_refused_naming_both(world: World) -> None:
    owner = world.start_host()
    owner.add_vnf("vnf-fw-owner")
    assert world.admin.enroll(owner.name, "vnf-fw-owner")["allowed"]
    # An admin registers a second name whose agent serves the SAME machine (a compromised agent
    # relaying the owner's quotes, or a mistaken registration).
    ghost = world.start_host(machine=owner.backend.platform)
    ghost.add_vnf("vnf-fw-ghost2")
    r = vm_cli(world, "attest", ghost.name, "--json")
    assert r.returncode == 1, r.stderr
    verdict = json.loads(r.stdout)
    assert not verdict["trusted"]
    [taken] = [x for x in verdict["reasons"] if x["rule"] == "host.platform_in_use"]
    assert owner.name in taken["message"] and ghost.name in taken["message"]
    enrolled = world.admin.enroll(ghost.name, "vnf-fw-ghost2")
    assert not enrolled["allowed"] and "not trusted" in " ".join(x["message"] for x in enrolled["reasons"])
    row = world.service.vm.storage.query("SELECT status, platform_key FROM manager_hosts WHERE name = ?", (ghost.name,))[0]
    assert row["status"] == "untrusted" and row["platform_key"] is None
    assert count(world, "SELECT COUNT(*) FROM manager_enrollments WHERE host = ?", ghost.name) == 0
    # The owner is untouched.
    assert world.admin.attest(owner.name)["trusted"]


def test_distrusting_a_host_revokes_every_certificate_issued_on_its_platform(world: World) -> None:
    first = world.start_host()
    first.add_vnf("vnf-fw-old-pck")
    old = world.admin.enroll(first.name, "vnf-fw-old-pck")
    assert old["allowed"]
    old_machine = first.backend.platform
    # The first host's PCK is re-issued (a new platform key in the simulation): an admin re-pins it,
    # audited, and its next quote pins the new platform; the certificate issued on the old one lives on.
    # (Without the re-pin the new PCK is another machine: refused, and its certificates revoked.)
    r = vm_cli(world, "hosts", "repin", first.name, "--reason", "PCK re-issued after TCB recovery", "--json")
    assert r.returncode == 0, r.stderr
    first.backend.platform = SimulatedPlatform.create(
        world.tmp / f"{first.name}-reissued", authority=world.platforms[0]
    )
    repinned = world.admin.attest(first.name)
    assert repinned["trusted"], repinned["reasons"]
    audit = [a for a in world.admin.audit() if a["host"] == first.name and a["action"] in ("repin-host", "attest-host")]
    assert any(a["action"] == "repin-host" and a["actor"] == "admin:alice" for a in audit)
    assert audit[-1]["evidence"]["repin_requested_by"] == "admin:alice"
    # The old machine now serves another registered host, which is then found compromised.
    second = world.start_host(machine=old_machine)
    assert world.admin.attest(second.name)["trusted"]
    serial = int(old["serial"], 16)
    assert ocsp_status(world, old["certificate_chain"][0]) == ocsp.OCSPCertStatus.GOOD
    r = vm_cli(world, "revoke", second.name, "--host", "--reason", "compromised", "--json")
    assert r.returncode == 0, r.stderr
    assert old["serial"] in json.loads(r.stdout)["revoked_serials"]
    assert ocsp_status(world, old["certificate_chain"][0]) == ocsp.OCSPCertStatus.REVOKED
    assert serial in crl_serials(world)
    [record] = [e for e in world.admin.enrollments() if e["serial"] == old["serial"]]
    assert record["status"] == "revoked" and "compromised" in record["revoke_reason"]


def test_hosts_add_refuses_an_existing_name_unless_replace(world: World) -> None:
    host = world.start_host()
    r = vm_cli(world, "hosts", "add", host.name, "--agent", "http://127.0.0.1:9")
    assert r.returncode == 2, r.stderr
    assert f"host {host.name!r} is already registered" in r.stderr and "Traceback" not in r.stderr
    [row] = world.service.vm.storage.query("SELECT agent_url FROM manager_hosts WHERE name = ?", (host.name,))
    assert row[0] == host.url  # unchanged
    r = vm_cli(world, "hosts", "add", host.name, "--agent", "http://127.0.0.1:9", "--replace")
    assert r.returncode == 0, r.stderr
    [row] = world.service.vm.storage.query("SELECT agent_url FROM manager_hosts WHERE name = ?", (host.name,))
    assert row[0] == "http://127.0.0.1:9"
    assert any(a["action"] == "register-host" and a["evidence"]["replace"] for a in world.admin.audit())


def test_hosts_remove_revokes_its_certificates_and_forgets_the_host(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-removed")
    doc = world.admin.enroll(host.name, "vnf-fw-removed")
    assert doc["allowed"]
    r = vm_cli(world, "hosts", "remove", host.name, "--reason", "decommissioned", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["revoked_serials"] == [doc["serial"]]
    assert count(world, "SELECT COUNT(*) FROM manager_hosts WHERE name = ?", host.name) == 0
    assert ocsp_status(world, doc["certificate_chain"][0]) == ocsp.OCSPCertStatus.REVOKED
    # Its agent's evidence now counts for nothing.
    r = post(world, "/v1/nonces", {"purpose": "host", "host": host.name})
    assert r.status_code == 404
    r = vm_cli(world, "hosts", "remove", host.name, "--reason", "again")
    assert r.returncode == 2 and "not registered" in r.stderr


def test_revoking_an_unknown_vnf_is_a_located_error_and_audits_nothing(world: World) -> None:
    audited = count(world, "SELECT COUNT(*) FROM manager_audit")
    r = vm_cli(world, "revoke", "vnf-zzz", "--reason", "x")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("ftrust: error: ") and "unknown VNF 'vnf-zzz'" in r.stderr
    assert "revoked 0" not in r.stdout and "Traceback" not in r.stderr
    assert count(world, "SELECT COUNT(*) FROM manager_audit") == audited
