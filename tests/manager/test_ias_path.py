"""The paper's own path: EPID quotes verified through IAS (the simulated IAS, over HTTP on loopback),
with the VM's API over real HTTPS. The sim backend acts as an EPID platform (``evidence="epid"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock
from floodlight_trust.agent.backends.sim import SIM_SIGNER, SimBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, enroll_via_vm
from floodlight_trust.config import from_mapping
from floodlight_trust.errors import VerificationError
from floodlight_trust.manager.client import VmClient
from floodlight_trust.manager.service import VmService, build_service
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.sgxsim.ias_service import SimulatedIas
from policy_lang import compile_policy_text
from tests.support.world import GOOD_IMAGE, HOST_FILES, INTEGRITY_IMAGE, PASSWORD, ima_list, init_test_ca

SUBSCRIPTION_KEY = "0123456789abcdef0123456789abcdef"


def policy() -> str:
    allow = "\n".join(f'    allow "{p}" digest in {{"{d.hex()}"}}' for p, d in HOST_FILES.items())
    return f"""
host epid_host {{
{allow}
    integrity_enclave = host_integrity
}}
enclave host_integrity {{
    identity: mrenclave in {{"{measure_enclave_image(INTEGRITY_IMAGE).hex()}"}}
    evidence: evidence_type == IAS
    allow_simulated = true
}}
enclave firewall {{
    identity: mrenclave in {{"{measure_enclave_image(GOOD_IMAGE).hex()}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
    tcb: tcb_status in {{UpToDate, SWHardeningNeeded}}
    allow_simulated = true
}}
enroll fw for "vnf-*" {{
    host = epid_host
    enclave = firewall
    certificate {{
        subject = "CN={{vnf}},O=floodlight-trust"
        san_uri = ["urn:ftrust:vnf:{{vnf}}"]
        validity = 1h
    }}
}}
"""


@dataclass
class EpidWorld:
    tmp: Path
    ias: SimulatedIas
    service: VmService
    vm: VmClient
    group_a: SimulatedPlatform  # two machines of EPID group A ...
    group_a2: SimulatedPlatform
    group_b: SimulatedPlatform  # ... and one of group B
    counter: int = 0

    def agent(self, group: SimulatedPlatform) -> Agent:
        """A registered host on a machine of its own in ``group``'s EPID group (its own pseudonym:
        one platform belongs to one registered host)."""
        self.counter += 1
        name = f"epid-host-{self.counter}"
        ima = self.tmp / f"{name}.ima"
        ima.write_bytes(ima_list(HOST_FILES))
        machine = SimulatedPlatform.create(self.tmp / f"{name}-machine", epid_group=group)
        self.service.vm.storage.hosts.add(name, "http://127.0.0.1:1", None, at=clock.now())  # as an admin would
        backend = SimBackend(machine, evidence="epid", vm_ca=self.service.vm.ca.certificate)
        backend.add_enclave(f"vnf-fw-{self.counter}", GOOD_IMAGE)
        self.service.vm.register_vnf(name, f"vnf-fw-{self.counter}", actor="admin:test")
        return Agent(name, backend, ImaSource(None, ima))


@pytest.fixture(scope="module")
def epid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EpidWorld]:
    tmp = tmp_path_factory.mktemp("epid")
    a = SimulatedPlatform.create(tmp / "a")
    a2 = SimulatedPlatform.create(tmp / "a2", epid_group=a)
    b = SimulatedPlatform.create(tmp / "b")
    ias = SimulatedIas(SUBSCRIPTION_KEY)
    ias.register_group(a)
    ias.register_group(b)
    url = ias.start()
    ca_file = tmp / "sim-ias-ca.pem"
    ca_file.write_bytes(ias.ca.public_bytes(serialization.Encoding.PEM))
    key_file = tmp / "ias.key"
    key_file.write_text(SUBSCRIPTION_KEY)
    key_file.chmod(0o600)
    config = from_mapping(
        {
            "state": {"dir": str(tmp / "state")},
            "ca": {"crl_url": "http://127.0.0.1:1/crl.der", "ocsp_url": "http://127.0.0.1:1/ocsp"},
            "vm": {"port": 0, "crl_port": 0, "require_linkable_epid": True},
            "ias": {
                "url": url,
                "api_version": 5,
                "subscription_key_env": "FTRUST_TEST_UNSET_IAS_KEY",
                "subscription_key_file": str(key_file),
                "unsafe_report_signing_ca": str(ca_file),
            },
        }
    )
    init_test_ca(config)
    service = build_service(config, password=PASSWORD, policy=compile_policy_text(policy()), anchors=[]).start()
    vm = VmClient(service.api_url, server_certificate=service.tls_certificate)
    try:
        yield EpidWorld(tmp, ias, service, vm, a, a2, b)
    finally:
        vm.close()
        service.stop()
        ias.stop()


def messages(doc: dict) -> str:  # type: ignore[type-arg]
    return " | ".join(r["message"] for r in doc["reasons"])


def test_host_and_vnf_enroll_through_ias(epid: EpidWorld) -> None:
    agent = epid.agent(epid.group_a)
    before = epid.ias.requests
    doc = enroll_via_vm(agent, epid.vm, f"vnf-fw-{epid.counter}")
    assert doc["allowed"], messages(doc)
    assert doc["simulated"] is True
    assert epid.ias.requests - before == 2  # the host quote and the VNF quote went to IAS
    leaf = x509.load_pem_x509_certificate(doc["certificate_chain"][0].encode())
    ca = x509.load_pem_x509_certificate(doc["certificate_chain"][1].encode())
    leaf.verify_directly_issued_by(ca)
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki == agent.backend.enclave(f"vnf-fw-{epid.counter}").public_key_der


def test_group_out_of_date_maps_to_out_of_date_and_the_policy_refuses_it(epid: EpidWorld) -> None:
    agent = epid.agent(epid.group_b)
    vnf = f"vnf-fw-{epid.counter}"
    epid.ias.group_status[epid.group_b.epid_group_id] = "GROUP_OUT_OF_DATE"
    try:
        doc = enroll_via_vm(agent, epid.vm, vnf)
    finally:
        del epid.ias.group_status[epid.group_b.epid_group_id]
    assert not doc["allowed"]
    tcb = [r for r in doc["reasons"] if r["rule"] == "tcb"]
    assert tcb and "OutOfDate" in tcb[0]["message"], messages(doc)


def test_vnf_quote_from_another_epid_group_is_refused(epid: EpidWorld) -> None:
    host = epid.agent(epid.group_a)
    assert epid.vm.submit_host_evidence(host.host_evidence(epid.vm.nonce("host", host.host)))["trusted"]
    intruder = epid.agent(epid.group_b)  # a VNF on a machine of another EPID group claims to be on `host`
    vnf = f"vnf-fw-{epid.counter}"
    epid.service.vm.register_vnf(host.host, vnf, actor="admin:test")  # the name is registered on `host`
    evidence = intruder.enclave_evidence(vnf, epid.vm.nonce("enclave", host.host, vnf))
    evidence["host"] = host.host
    doc = epid.vm.submit_enclave_evidence(evidence)
    assert not doc["allowed"]
    assert any(r["rule"] == "protocol.platform" and "EPID group" in r["message"] for r in doc["reasons"]), messages(doc)


def test_same_group_other_machine_is_refused_when_linkable_epid_is_required(epid: EpidWorld) -> None:
    host = epid.agent(epid.group_a)
    assert epid.vm.submit_host_evidence(host.host_evidence(epid.vm.nonce("host", host.host)))["trusted"]
    neighbour = epid.agent(epid.group_a2)  # same EPID group, another machine: another pseudonym
    vnf = f"vnf-fw-{epid.counter}"
    epid.service.vm.register_vnf(host.host, vnf, actor="admin:test")
    evidence = neighbour.enclave_evidence(vnf, epid.vm.nonce("enclave", host.host, vnf))
    evidence["host"] = host.host
    doc = epid.vm.submit_enclave_evidence(evidence)
    assert not doc["allowed"]
    assert any("pseudonym" in r["message"] for r in doc["reasons"]), messages(doc)


def test_wrong_nonce_in_the_ias_report_is_refused(epid: EpidWorld) -> None:
    agent = epid.agent(epid.group_a)
    epid.ias.nonce_override = "0" * 32  # IAS (or someone in between) answers with another request's report
    try:
        # Pushed evidence that does not verify proves nothing: refused (403) and recorded nowhere.
        with pytest.raises(VerificationError) as refused:
            epid.vm.submit_host_evidence(agent.host_evidence(epid.vm.nonce("host", agent.host)))
    finally:
        epid.ias.nonce_override = None
    verdict = {"reasons": refused.value.reasons}  # type: ignore[attr-defined]
    assert any(r["rule"] == "sgx.ias" and "nonce" in r["message"] for r in verdict["reasons"]), messages(verdict)


def test_a_quote_ias_finds_invalid_is_refused(epid: EpidWorld) -> None:
    stranger = SimulatedPlatform.create(epid.tmp / "unknown-group")  # a group IAS does not know
    agent = epid.agent(stranger)
    with pytest.raises(VerificationError) as refused:
        epid.vm.submit_host_evidence(agent.host_evidence(epid.vm.nonce("host", agent.host)))
    verdict = {"reasons": refused.value.reasons}  # type: ignore[attr-defined]
    assert any("SIGNATURE_INVALID" in r["message"] for r in verdict["reasons"]), messages(verdict)


def _as_host(epid: EpidWorld, other: Agent, host: Agent) -> dict:  # type: ignore[type-arg]
    """Host evidence from ``other``'s machine, presented in ``host``'s name."""
    impostor = Agent(host.host, other.backend, host.ima)
    return epid.vm.submit_host_evidence(impostor.host_evidence(epid.vm.nonce("host", host.host)))


def test_an_ias_host_is_pinned_to_its_epid_group_between_rounds(epid: EpidWorld) -> None:
    host = epid.agent(epid.group_a)
    assert epid.vm.submit_host_evidence(host.host_evidence(epid.vm.nonce("host", host.host)))["trusted"]
    verdict = _as_host(epid, epid.agent(epid.group_b), host)  # a machine of another group
    assert not verdict["trusted"]
    [pin] = [r for r in verdict["reasons"] if r["rule"] == "protocol.platform"]
    assert "is registered in EPID group" in pin["message"] and "comes from EPID group" in pin["message"]
    assert "another machine" in pin["message"]
    # The host itself still attests.
    assert epid.vm.submit_host_evidence(host.host_evidence(epid.vm.nonce("host", host.host)))["trusted"]


def test_an_ias_host_is_pinned_to_its_pseudonym_when_linkable_epid_is_required(epid: EpidWorld) -> None:
    host = epid.agent(epid.group_a)
    assert epid.vm.submit_host_evidence(host.host_evidence(epid.vm.nonce("host", host.host)))["trusted"]
    verdict = _as_host(epid, epid.agent(epid.group_a2), host)  # same group, another machine
    assert not verdict["trusted"]
    assert any(r["rule"] == "protocol.platform" and "pseudonym" in r["message"] for r in verdict["reasons"])
