"""Issue 11, item 2 (VNF names chosen by the submitter), attacked for real over HTTPS.

What once worked: vnf-a's quote was enrolled as ``vnf-b`` and as ``vnf-zz-impostor``, and the
certificates carried those names. Now a VNF identity is a registration (host, name, enroll rule)
and a name is bound to the enclave key and MRENCLAVE of its first enrollment until an admin
releases it; an enclave key holds one name.
"""

from __future__ import annotations

import json

from cryptography.x509 import ocsp

from tests.support.attacks import count, ocsp_status, post, table_sizes, unauthenticated_rejects
from tests.support.world import World, vm_cli


def nonce(world: World, host: str, vnf: str) -> bytes:
    r = post(world, "/v1/nonces", {"purpose": "enclave", "host": host, "vnf": vnf})
    assert r.status_code == 200, r.text
    return bytes.fromhex(r.json()["nonce"])


def certificates_named(world: World, vnf: str) -> int:
    return count(world, "SELECT COUNT(*) FROM pki_certificates WHERE subject LIKE ?", f"CN={vnf},%")


def test_a_quote_relabelled_as_an_unregistered_name_is_refused_and_leaves_no_row(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-a")
    assert world.admin.enroll(host.name, "vnf-fw-a")["allowed"]
    before = table_sizes(world)
    counted = unauthenticated_rejects("/v1/nonces", "vnf.unregistered")
    r = post(world, "/v1/nonces", {"purpose": "enclave", "host": host.name, "vnf": "vnf-fw-zz-impostor"})
    assert r.status_code == 404 and "'vnf-fw-zz-impostor' is not registered" in r.json()["error"]["message"]
    # With a nonce asked without a VNF name, the relabelled quote itself is refused.
    r = post(world, "/v1/nonces", {"purpose": "enclave", "host": host.name})
    evidence = host.agent.enclave_evidence("vnf-fw-a", bytes.fromhex(r.json()["nonce"]))
    evidence["vnf"] = "vnf-fw-zz-impostor"
    r = post(world, "/v1/enroll", evidence)
    assert r.status_code == 404 and "not registered" in r.json()["error"]["message"]
    after = table_sizes(world)
    assert after == before  # (the nonce for the registered host wrote nothing either)
    assert certificates_named(world, "vnf-fw-zz-impostor") == 0
    assert unauthenticated_rejects("/v1/nonces", "vnf.unregistered") == counted + 1
    # An admin asking for it is told the same, exit 2.
    r = vm_cli(world, "enroll", host.name, "vnf-fw-zz-impostor")
    assert r.returncode == 2 and "not registered" in r.stderr and "Traceback" not in r.stderr


def test_a_quote_relabelled_as_another_registered_name_is_refused(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-a")
    b = host.add_vnf("vnf-fw-b")
    assert world.admin.enroll(host.name, "vnf-fw-a")["allowed"]
    # vnf-fw-b is registered but not yet enrolled: vnf-fw-a's enclave may not take its name.
    evidence = host.agent.enclave_evidence("vnf-fw-a", nonce(world, host.name, "vnf-fw-b"))
    evidence["vnf"] = "vnf-fw-b"
    r = post(world, "/v1/enroll", evidence)
    assert r.status_code == 200
    doc = r.json()
    assert not doc["allowed"]
    [bound] = [x for x in doc["reasons"] if x["rule"] == "vnf.binding"]
    assert "bound to VNF 'vnf-fw-a'" in bound["message"] and "one enclave holds one name" in bound["message"]
    assert certificates_named(world, "vnf-fw-b") == 0
    # vnf-fw-b's own enclave enrolls and binds the name; vnf-fw-a's quote is refused again, now on both counts.
    assert world.admin.enroll(host.name, "vnf-fw-b")["allowed"]
    evidence = host.agent.enclave_evidence("vnf-fw-a", nonce(world, host.name, "vnf-fw-b"))
    evidence["vnf"] = "vnf-fw-b"
    doc = post(world, "/v1/enroll", evidence).json()
    assert not doc["allowed"]
    messages = [x["message"] for x in doc["reasons"] if x["rule"] == "vnf.binding"]
    assert len(messages) == 2 and any("enclave of its first enrollment" in m for m in messages)
    [cert] = [e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-b"]
    assert cert["public_key_sha256"] != "" and b.credentials is not None
    assert certificates_named(world, "vnf-fw-b") == 1


def test_a_bound_name_takes_no_other_enclave_until_an_admin_releases_it(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-swap")
    first = world.admin.enroll(host.name, "vnf-fw-swap")
    assert first["allowed"]
    # Another enclave (same code, new key: a restarted or a rogue instance) under the same name.
    host.backend.add_enclave("vnf-fw-swap", b"vnf-firewall enclave image: code v1.2 + config {rate: 100}\n")
    r = vm_cli(world, "enroll", host.name, "vnf-fw-swap", "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    [bound] = [x for x in doc["reasons"] if x["rule"] == "vnf.binding"]
    assert "key differs" in bound["message"] and f"vm vnfs release {host.name} vnf-fw-swap" in bound["message"]
    assert ocsp_status(world, first["certificate_chain"][0]) == ocsp.OCSPCertStatus.GOOD
    # The admin releases the name: the first enclave's certificate is revoked in the same step, so
    # the two enclaves never both hold the name; then the new enclave enrolls and binds it.
    r = vm_cli(world, "vnfs", "release", host.name, "vnf-fw-swap", "--reason", "instance replaced", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["revoked_serials"] == [first["serial"]]
    assert ocsp_status(world, first["certificate_chain"][0]) == ocsp.OCSPCertStatus.REVOKED
    second = world.admin.enroll(host.name, "vnf-fw-swap")
    assert second["allowed"], second["reasons"]
    live = [e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-swap" and e["status"] == "active"]
    assert [e["serial"] for e in live] == [second["serial"]]
    assert any(a["action"] == "release-vnf" and a["actor"] == "admin:alice" for a in world.admin.audit())


def test_only_an_opted_in_enroll_rule_registers_names_itself_and_says_so(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-auto", register=False)
    vm = world.service.vm
    r = post(world, "/v1/nonces", {"purpose": "enclave", "host": host.name, "vnf": "vnf-fw-auto"})
    assert r.status_code == 404  # not opted in: an admin must register it
    vm.self_registering_rules = frozenset({"fw"})  # the operator's vm.self_registering_enroll_rules = ["fw"]
    try:
        doc = world.admin.enroll(host.name, "vnf-fw-auto")
    finally:
        vm.self_registering_rules = frozenset()
    assert doc["allowed"], doc["reasons"]
    [row] = vm.storage.query("SELECT registered_by, enroll_rule FROM manager_vnfs WHERE host = ? AND name = ?",
                        (host.name, "vnf-fw-auto"))  # fmt: skip
    assert row["registered_by"] == "enroll rule fw (vm.self_registering_enroll_rules)" and row["enroll_rule"] == "fw"
    # The self-made registration binds the name like any other.
    host.backend.add_enclave("vnf-fw-auto", b"vnf-firewall enclave image: code v1.2 + config {rate: 100}\n")
    again = world.admin.enroll(host.name, "vnf-fw-auto")
    assert not again["allowed"] and any(x["rule"] == "vnf.binding" for x in again["reasons"])


def test_registration_needs_an_enroll_rule_admitting_the_name(world: World) -> None:
    host = world.start_host()
    r = vm_cli(world, "vnfs", "add", host.name, "other-zz")
    assert r.returncode == 2 and "no enroll rule" in r.stderr and "Traceback" not in r.stderr
    r = vm_cli(world, "vnfs", "add", host.name, "vnf-fw-x", "--enroll-rule", "nosuch")
    assert r.returncode == 2 and "does not admit" in r.stderr
    assert count(world, "SELECT COUNT(*) FROM manager_vnfs WHERE host = ?", host.name) == 0
