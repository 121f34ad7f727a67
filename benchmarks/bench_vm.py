"""Enrollments per second through the VM's HTTPS API with the sim backend, and per-enrollment latency.

One enrollment = ask a nonce, build the enclave's evidence (a simulated DCAP quote binding the nonce
and the enclave key), POST it, verify (DCAP + binding + policy), issue the certificate and write the
certificate, enrollment and audit records in one transaction, install the certificate in the
enclave. Client threads keep TLS sessions alive, as agents do. Issue 7's target: >= 200/s.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import Result

ENROLLMENTS = 400
CLIENTS = 8


def run() -> list[Result]:
    from floodlight_trust import clock
    from floodlight_trust.agent.backends.sim import SIM_SIGNER, SimBackend
    from floodlight_trust.agent.imasource import ImaSource
    from floodlight_trust.agent.service import Agent, enroll_via_vm
    from floodlight_trust.config import from_mapping
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry
    from floodlight_trust.manager.client import VmClient
    from floodlight_trust.manager.service import build_service
    from floodlight_trust.pki.ca import CertificateAuthority
    from floodlight_trust.pki.records import CertificateRecords
    from floodlight_trust.secrets import Secret
    from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
    from floodlight_trust.storage.database import Database
    from policy_lang import compile_policy_text

    image = b"benchmark VNF image"
    files = {"boot_aggregate": hashlib.sha256(b"boot").digest(), "/usr/bin/agent": hashlib.sha256(b"a").digest()}
    allow = "\n".join(f'  allow "{p}" digest in {{"{d.hex()}"}}' for p, d in files.items())
    policy = compile_policy_text(
        f"""
host h {{
{allow}
}}
enclave e {{
  identity: mrenclave in {{"{measure_enclave_image(image).hex()}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
  allow_simulated = true
}}
enroll r for "vnf-*" {{ host = h  enclave = e }}
"""
    )
    password = Secret("benchmark password", "bench")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        platform = SimulatedPlatform.create(tmp / "platform")
        config = from_mapping({"state": {"dir": str(tmp / "state")}, "vm": {"port": 0, "crl_port": 0}})
        db = Database(config.state_dir / "ftrust.sqlite3")
        CertificateAuthority.init(
            config.state_path("ca", "dir"),
            password,
            subject="CN=bench CA",
            crl_url="http://127.0.0.1:8990/crl.der",
            ocsp_url="http://127.0.0.1:8990/ocsp",
            at=clock.now(),
            records=CertificateRecords(db),
        )
        service = build_service(
            config, password=password, policy=policy, anchors=[platform.anchor()], threads=16
        ).start()
        try:
            ima = tmp / "ima.log"
            ima.write_bytes("".join(format_ascii_line(make_entry(p, d), "sha1") for p, d in files.items()).encode())
            backend = SimBackend(platform, {})
            agent = Agent("bench-host", backend, ImaSource(None, ima))
            names = [f"vnf-{i:04d}" for i in range(ENROLLMENTS)]
            for n in names:
                backend.add_enclave(n, image)
            local = threading.local()

            def client() -> VmClient:
                if not hasattr(local, "vm"):
                    local.vm = VmClient(service.api_url, server_certificate=service.tls_certificate)
                return local.vm  # type: ignore[no-any-return]

            assert client().submit_host_evidence(agent.host_evidence(client().nonce("host", agent.host)))["trusted"]
            # Warm up TLS sessions and caches (collateral verification, PCK chain) outside the clock.
            warm = [f"vnf-warm-{i}" for i in range(CLIENTS)]
            for n in warm:
                backend.add_enclave(n, image)
            latencies: list[float] = []

            def one(n: str) -> None:
                t0 = time.perf_counter()
                doc = enroll_via_vm(agent, client(), n, attest_host=False)
                latencies.append(time.perf_counter() - t0)
                if not doc["allowed"]:
                    raise RuntimeError(f"enrollment refused: {doc['reasons']}")

            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(one, warm))
                latencies.clear()
                start = time.perf_counter()
                list(pool.map(one, names))
                elapsed = time.perf_counter() - start
        finally:
            service.stop()
    rate = ENROLLMENTS / elapsed
    lat = sorted(latencies)
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    return [
        Result(f"enrollments/s ({CLIENTS} clients, sim backend, HTTPS)", rate, "1/s", ">= 200", rate >= 200),
        Result("enrollment latency p50", p50, "ms"),
        Result("enrollment latency p99", p99, "ms"),
    ]
