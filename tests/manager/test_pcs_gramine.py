"""The gramine backend sends quotes without collateral; the VM fetches it from a PCS (here a local PCS
v4 look-alike on 127.0.0.1 serving a simulated platform's collateral), caches it until nextUpdate.

Gramine's /dev/attestation is emulated with a directory whose ``quote`` is a FIFO: reading it blocks
until the emulator thread, which reads ``user_report_data``, writes the quote over it. So the
backend runs exactly Gramine's sequence (write 64 bytes, then read the quote) on plain files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floodlight_trust import clock
from floodlight_trust.agent.backends.gramine import GramineBackend
from floodlight_trust.agent.backends.sim import SIM_SIGNER
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.service import Agent, enroll_via_vm
from floodlight_trust.config import from_mapping
from floodlight_trust.enclave.channel import EnclaveResponder, socket_path
from floodlight_trust.enclave.platform import GramineEnclave
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.manager.client import VmClient
from floodlight_trust.manager.service import build_service
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from policy_lang import compile_policy_text
from tests.support.pcs import FakePcs
from tests.support.world import GOOD_IMAGE, HOST_FILES, INTEGRITY_IMAGE, PASSWORD, ima_list, init_test_ca, policy_text


class GramineEmulator:
    """One enclave's /dev/attestation: ``attestation_type``, and FIFOs ``user_report_data`` and ``quote``.

    Like Gramine's pseudo-files, a quote is made over the report data last written: the emulator
    reads ``user_report_data`` until the writer closes it, then serves exactly one quote.
    """

    def __init__(self, root: Path, platform: SimulatedPlatform, mrenclave: bytes):
        root.mkdir(parents=True)
        (root / "attestation_type").write_text("dcap\n")
        (root / "my_target_info").write_bytes(mrenclave + bytes(480))  # sgx_target_info_t: MRENCLAVE first
        os.mkfifo(root / "user_report_data")
        os.mkfifo(root / "quote")
        self.root, self.platform, self.mrenclave = root, platform, mrenclave
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            with open(self.root / "user_report_data", "rb") as fifo:  # blocks until the backend writes
                report_data = fifo.read()
            if self.stopping:
                return
            quote = self.platform.quote(mrenclave=self.mrenclave, mrsigner=SIM_SIGNER, report_data=report_data)
            with open(self.root / "quote", "wb") as fifo:  # blocks until the backend reads
                fifo.write(quote)

    def stop(self) -> None:
        self.stopping = True
        with open(self.root / "user_report_data", "wb"):  # unblock the emulator
            pass
        self.thread.join(timeout=5)




@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Any, FakePcs, Path, SimulatedPlatform]]:
    platform = SimulatedPlatform.create(tmp_path / "platform")
    pcs = FakePcs.for_platform(platform, clock.now()).start()
    config = from_mapping(
        {
            "state": {"dir": str(tmp_path / "state")},
            "ca": {"crl_url": "http://127.0.0.1:1/crl.der", "ocsp_url": "http://127.0.0.1:1/ocsp"},
            "vm": {"port": 0, "crl_port": 0},
            "pcs": {"url": pcs.url, "cache_dir": "pcs-cache"},
        }
    )
    init_test_ca(config)
    service = build_service(
        config, password=PASSWORD, policy=compile_policy_text(policy_text()), anchors=[platform.anchor()]
    ).start()
    try:
        yield service, pcs, tmp_path, platform
    finally:
        service.stop()
        pcs.stop()


def test_gramine_quotes_are_verified_with_collateral_fetched_from_pcs_and_cached(
    deployment: tuple[Any, FakePcs, Path, SimulatedPlatform],
) -> None:
    service, pcs, tmp, platform = deployment
    host_dev = GramineEmulator(tmp / "dev-attestation", platform, measure_enclave_image(INTEGRITY_IMAGE))
    emulators = [host_dev]
    # Each VNF is its own enclave (the runtime on its own /dev/attestation), reached over its socket.
    sockets = tmp / "enclave-sockets"
    runtimes, responders = {}, []
    for vnf in ("vnf-fw-g1", "vnf-fw-g2"):
        emulators.append(GramineEmulator(tmp / vnf / "attestation", platform, measure_enclave_image(GOOD_IMAGE)))
        (tmp / vnf / "sealed").mkdir()
        enclave = GramineEnclave(attestation_root=tmp / vnf / "attestation", sealed_dir=tmp / vnf / "sealed")
        runtimes[vnf] = EnclaveRuntime.start(vnf, enclave, service.vm.ca.certificate)
        responders.append(EnclaveResponder(runtimes[vnf], socket_path(sockets, vnf)).start())
    ima = tmp / "ima.log"
    ima.write_bytes(ima_list(HOST_FILES))
    agent = Agent("gramine-host", GramineBackend(root=tmp / "dev-attestation", socket_dir=sockets), ImaSource(None, ima))
    service.vm.storage.hosts.add("gramine-host", "http://127.0.0.1:1", None, at=clock.now())  # as an admin would
    for vnf in ("vnf-fw-g1", "vnf-fw-g2"):
        service.vm.register_vnf("gramine-host", vnf, actor="admin:test")
    vm = VmClient(service.api_url, server_certificate=service.tls_certificate)
    try:
        first = enroll_via_vm(agent, vm, "vnf-fw-g1")
        assert first["allowed"], first["reasons"]
        fetched = sorted(p.split("?")[0].rsplit("/", 1)[-1] for p in pcs.requests)
        assert fetched == ["identity", "pckcrl", "rootcacrl", "tcb"]
        assert "fmspc=00F0D1500000" in next(p for p in pcs.requests if "/tcb?" in p)
        second = enroll_via_vm(agent, vm, "vnf-fw-g2")  # host and VNF quotes again: collateral from the cache
        assert second["allowed"], second["reasons"]
        assert len(pcs.requests) == 4
        assert len(list((tmp / "state" / "pcs-cache").iterdir())) == 4
        installed = runtimes["vnf-fw-g2"].credentials
        assert installed is not None and installed.chain_pem[0] == second["certificate_chain"][0]
        assert (tmp / "vnf-fw-g2" / "sealed" / "credentials").exists()  # on the encrypted mount
    finally:
        vm.close()
        for r in responders:
            r.stop()
        for e in emulators:
            e.stop()
