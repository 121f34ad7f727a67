"""Issue 7's acceptance tests, through real HTTPS on loopback with the sim backend."""

from __future__ import annotations

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.agent.service import enroll_via_vm
from floodlight_trust.enclave.credentials import CredentialsRefused
from floodlight_trust.errors import VerificationError
from tests.support.world import GOOD_IMAGE, HOST_FILES, World


def messages(doc: dict) -> str:
    return " | ".join(r["message"] for r in doc["reasons"])


def test_clean_host_and_good_vnf_enroll_with_a_certificate_chaining_to_the_ca(world: World) -> None:
    host = world.start_host()
    enclave = host.add_vnf("vnf-fw-a")
    verdict = world.admin.attest(host.name)
    assert verdict["trusted"], verdict
    assert verdict["simulated"] is True
    result = world.admin.enroll(host.name, "vnf-fw-a")
    assert result["allowed"], result
    leaf = x509.load_pem_x509_certificate(result["certificate_chain"][0].encode())
    ca = world.ca.certificate
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)
    # The certificate is for the key that stays in the enclave, and the enclave installed it.
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(serialization.Encoding.DER, spki) == enclave.public_key_der
    assert enclave.credentials is not None
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert uris == ["urn:ftrust:vnf:vnf-fw-a"]
    records = [e for e in world.admin.enrollments() if e["vnf"] == "vnf-fw-a"]
    assert [r["serial"] for r in records] == [result["serial"]]
    audit = [a for a in world.admin.audit() if a["vnf"] == "vnf-fw-a" and a["action"] == "enroll"]
    assert audit[-1]["allowed"] and audit[-1]["policy_version"] == result["policy_version"]
    assert audit[-1]["evidence"]["warning"].startswith("SIMULATED SGX")


def test_host_with_an_unknown_file_is_refused_naming_the_file(world: World) -> None:
    host = world.start_host(files={**HOST_FILES, "/usr/bin/evil-miner": hashlib.sha256(b"evil").digest()})
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    assert "/usr/bin/evil-miner" in messages(verdict)
    host.add_vnf("vnf-fw-untrusted-host")
    result = world.admin.enroll(host.name, "vnf-fw-untrusted-host")
    assert not result["allowed"]
    assert "not trusted" in messages(result)


def test_vnf_whose_image_changed_by_one_byte_is_refused_naming_mrenclave(world: World) -> None:
    host = world.start_host()
    changed = bytearray(GOOD_IMAGE)
    changed[10] ^= 1
    host.add_vnf("vnf-fw-changed", bytes(changed))
    result = world.admin.enroll(host.name, "vnf-fw-changed")
    assert not result["allowed"]
    assert "mrenclave" in messages(result)
    assert hashlib.sha256(bytes(changed)).hexdigest() in str(result["reasons"])


def test_replayed_nonce_is_refused(world: World) -> None:
    host = world.start_host()
    vm = world.anonymous
    evidence = host.agent.host_evidence(vm.nonce("host", host.name))
    assert vm.submit_host_evidence(evidence)["trusted"]
    # A replay proves nothing: refused (403) and recorded nowhere (tests/security covers the rows).
    with pytest.raises(VerificationError, match="nonce replayed"):
        vm.submit_host_evidence(evidence)


def test_expired_nonce_is_refused(world: World) -> None:
    host = world.start_host()
    vm = world.anonymous
    evidence = host.agent.host_evidence(vm.nonce("host", host.name))
    world.clock.offset = timedelta(seconds=31)
    try:
        with pytest.raises(VerificationError, match="nonce expired"):
            vm.submit_host_evidence(evidence)
    finally:
        world.clock.offset = timedelta()


def test_vnf_quote_from_another_platform_is_refused(world: World) -> None:
    host = world.start_host(platform=0)
    elsewhere = world.start_host(platform=1, register=False)
    elsewhere.add_vnf("vnf-fw-borrowed")
    world.admin.add_vnf(host.name, "vnf-fw-borrowed")  # the name is registered on the trusted host
    vm = world.anonymous
    assert vm.submit_host_evidence(host.agent.host_evidence(vm.nonce("host", host.name)))["trusted"]
    # The VNF runs on another machine but claims to be on the trusted host.
    elsewhere.agent.host = host.name
    evidence = elsewhere.agent.enclave_evidence("vnf-fw-borrowed", vm.nonce("enclave", host.name, "vnf-fw-borrowed"))
    result = vm.submit_enclave_evidence(evidence)
    assert not result["allowed"]
    assert "another platform" in messages(result)


def test_report_data_not_matching_the_sent_key_is_refused(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-swapped")
    vm = world.anonymous
    assert vm.submit_host_evidence(host.agent.host_evidence(vm.nonce("host", host.name)))["trusted"]
    evidence = host.agent.enclave_evidence("vnf-fw-swapped", vm.nonce("enclave", host.name, "vnf-fw-swapped"))
    attacker = ec.generate_private_key(ec.SECP256R1()).public_key()
    evidence["public_key"] = base64.b64encode(
        attacker.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    with pytest.raises(VerificationError, match="REPORTDATA"):
        vm.submit_enclave_evidence(evidence)


def test_vm_generated_key_opens_only_in_the_enclave_holding_the_bound_key(world: World) -> None:
    host = world.start_host()
    enclave = host.add_vnf("vnf-fw-sealed")
    other = host.add_vnf("vnf-fw-other")
    result = world.admin.enroll(host.name, "vnf-fw-sealed", key_mode="vm-generated")
    assert result["allowed"], result
    assert result["key_mode"] == "vm-generated" and result["wrapped_key"]
    leaf = x509.load_pem_x509_certificate(result["certificate_chain"][0].encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert enclave.provisioned_key is not None
    assert enclave.provisioned_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) == leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert leaf.public_key().public_bytes(serialization.Encoding.DER, spki) != enclave.public_key_der
    relabelled = {
        "host": host.name,
        "vnf": "vnf-fw-other",
        "serial": result["serial"],
        "certificate_chain": result["certificate_chain"],
        "wrapped_key": result["wrapped_key"],
        "provisioning": result["provisioning"],
    }
    with pytest.raises(CredentialsRefused, match="another enclave") as refused:
        host.agent.install("vnf-fw-other", relabelled)
    rules = {r.rule for r in refused.value.refusal}
    assert rules == {"enclave.credentials.provisioning", "enclave.credentials.wrapped_key"}, refused.value
    assert other.credentials is None


def test_fifty_concurrent_enrollments_get_fifty_serials_and_records(world: World) -> None:
    host = world.start_host()
    names = [f"vnf-fw-many-{i:02d}" for i in range(50)]
    for n in names:
        host.add_vnf(n)
    vm = world.anonymous
    assert vm.submit_host_evidence(host.agent.host_evidence(vm.nonce("host", host.name)))["trusted"]

    def one(n: str) -> dict:
        return enroll_via_vm(host.agent, vm_for_thread(world), n, attest_host=False)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, names))
    assert all(r["allowed"] for r in results), [messages(r) for r in results if not r["allowed"]]
    serials = {r["serial"] for r in results}
    assert len(serials) == 50
    records = [e for e in world.service.vm.storage.enrollments.enrollments(host=host.name)]
    assert len(records) == 50 and {r.serial for r in records} == serials


def vm_for_thread(world: World):  # one keep-alive session per thread (requests.Session is not thread-safe)
    import threading

    from floodlight_trust.manager.client import VmClient

    local = _local.__dict__.setdefault("t", threading.local())
    if not hasattr(local, "vm"):
        local.vm = VmClient(world.service.api_url, server_certificate=world.service.tls_certificate)
    return local.vm


class _Local:
    pass


_local = _Local()
