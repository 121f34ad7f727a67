"""Continuous re-attestation (issue 8): the cost of one incremental round, and rounds per second.

One round for a host = fresh nonce, the agent reads its IMA list and quotes it (sim backend),
the VM verifies the quote (DCAP path) and the binding, appraises only the entries appended since the
last trusted round (prefix checked against the state kept in memory, or against the persisted
state's SHA-256 after a VM restart), judges them with the host policy, and records the verdict and
the new state in one transaction. Agents are called in-process (no HTTP) to isolate the VM's work.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import Result

BASE_ENTRIES = 100_000
NEW_ENTRIES = 1_000
HOSTS = 20


def _digest(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def _path(i: int) -> str:
    return f"/usr/lib/pkg{i % 997}/sub{i % 31}/file{i}.so"


class InProcessAgent:
    """``manager.context.AgentConnection`` over an in-process ``Agent`` (no HTTP)."""

    def __init__(self, agent: Any):
        self.agent = agent
        self.sent: list[int] = []

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> dict[str, Any]:
        doc = dict(self.agent.host_evidence(nonce, ima_offset))
        self.sent.append(len(doc["ima_list"]))  # base64 characters on the wire
        return doc

    def enclave_evidence(self, vnf: str, nonce: bytes) -> dict[str, Any]:
        return dict(self.agent.enclave_evidence(vnf, nonce))

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]:
        return dict(self.agent.install(vnf, message))


def run() -> list[Result]:
    from floodlight_trust import clock
    from floodlight_trust.agent.backends.sim import SIM_SIGNER, SimBackend
    from floodlight_trust.agent.imasource import ImaSource
    from floodlight_trust.agent.service import Agent
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry
    from floodlight_trust.manager.reattest import ReattestScheduler
    from floodlight_trust.manager.workflow import VerificationManager
    from floodlight_trust.pki.ca import CertificateAuthority
    from floodlight_trust.pki.records import CertificateRecords
    from floodlight_trust.secrets import Secret
    from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
    from floodlight_trust.storage.database import Database
    from policy_lang import load_policy

    total = BASE_ENTRIES + 2 * NEW_ENTRIES
    image = b"benchmark VNF image"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        lines = [f"{_digest(i).hex()}  {_path(i)}\n" for i in range(total)]
        lines.append(f"{hashlib.sha256(b'boot').hexdigest()}  boot_aggregate\n")
        (tmp / "ref.sha256sum").write_text("".join(lines))
        (tmp / "site.policy").write_text(
            f"""
host h {{
    template in {{"ima-ng"}}
    include sha256sum "ref.sha256sum"
}}
enclave e {{
    identity: mrenclave in {{"{measure_enclave_image(image).hex()}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
    allow_simulated = true
}}
enroll r for "vnf-*" {{ host = h  enclave = e }}
"""
        )
        policy = load_policy(tmp / "site.policy")
        platform = SimulatedPlatform.create(tmp / "platform")
        db = Database(tmp / "state.sqlite3")
        password = Secret("benchmark password", "bench")
        ca = CertificateAuthority.init(
            tmp / "ca", password, subject="CN=bench CA", crl_url="http://127.0.0.1:9/crl.der",
            ocsp_url="http://127.0.0.1:9/ocsp", at=clock.now(), records=CertificateRecords(db),
        )  # fmt: skip
        agents: dict[str, InProcessAgent] = {}
        vm = VerificationManager(
            db=db, ca=ca, policy=policy, anchors=[platform.anchor()], connect=lambda record: agents[record.name]
        )

        def entries(lo: int, hi: int) -> bytes:
            return "".join(format_ascii_line(make_entry(_path(i), _digest(i)), "sha1") for i in range(lo, hi)).encode()

        def add_host(name: str, ima: bytes, vnfs: int = 0) -> Path:
            path = tmp / f"{name}.ima"
            path.write_bytes(ima)
            backend = SimBackend(platform, vm_ca=ca.certificate)
            for k in range(vnfs):
                backend.add_enclave(f"vnf-{name}-{k}", image)
            agents[name] = InProcessAgent(Agent(name, backend, ImaSource(None, path)))
            vm.state.add_host(name, f"inproc://{name}", None, at=clock.now())
            return path

        boot = format_ascii_line(make_entry("boot_aggregate", hashlib.sha256(b"boot").digest()), "sha1").encode()
        big = add_host("big", boot + entries(0, BASE_ENTRIES))

        def timed(fn: Any) -> tuple[float, Any]:
            t0 = time.perf_counter()
            out = fn()
            return time.perf_counter() - t0, out

        t_full, v = timed(lambda: vm.attest_host("big", actor="bench"))
        assert v.trusted and v.ima_entries == BASE_ENTRIES + 1, v.reasons[:3]
        with big.open("ab") as fh:
            fh.write(entries(BASE_ENTRIES, BASE_ENTRIES + NEW_ENTRIES))
        t_inc, v = timed(lambda: vm.attest_host("big", actor="bench"))
        assert v.trusted and v.ima_entries == BASE_ENTRIES + NEW_ENTRIES + 1, v.reasons[:3]
        sent_tail = agents["big"].sent[-1]
        # The same round with the whole list on the wire (what every round cost before the
        # incremental transfer; the appraisal stays incremental): the VM forgets the bytes it holds.
        t_whole = []
        for k in range(3):
            with big.open("ab") as fh:
                fh.write(entries(BASE_ENTRIES + NEW_ENTRIES + k, BASE_ENTRIES + NEW_ENTRIES + k + 1))
            vm.host_attestation._ima_transfer.clear()
            t, v = timed(lambda: vm.attest_host("big", actor="bench"))
            assert v.trusted, v.reasons[:3]
            t_whole.append(t)
        sent_whole = agents["big"].sent[-1]
        t_tail = []
        for k in range(3, 6):
            with big.open("ab") as fh:
                fh.write(entries(BASE_ENTRIES + NEW_ENTRIES + k, BASE_ENTRIES + NEW_ENTRIES + k + 1))
            t, v = timed(lambda: vm.attest_host("big", actor="bench"))
            assert v.trusted and agents["big"].sent[-1] < 1000, v.reasons[:3]
            t_tail.append(t)
        vm.host_attestation._ima_states.clear()  # a restarted VM: resume from the persisted state, whole list sent once
        vm.host_attestation._ima_transfer.clear()
        with big.open("ab") as fh:
            fh.write(entries(BASE_ENTRIES + NEW_ENTRIES + 6, total))
        t_resume, v = timed(lambda: vm.attest_host("big", actor="bench"))
        assert v.trusted and v.ima_entries == total + 1, v.reasons[:3]

        small = boot + entries(0, 50)
        names = [f"h{i:03d}" for i in range(HOSTS)]
        for n in names:
            add_host(n, small, vnfs=1)
            assert vm.attest_host(n, actor="bench").trusted
            assert vm.enroll(n, f"vnf-{n}-0", actor="bench").allowed
        quiet = ReattestScheduler(vm, interval_seconds=0, renew=False)
        renewing = ReattestScheduler(vm, interval_seconds=0, renew=True)
        t_hosts, report = timed(lambda: quiet.run_round(names))
        assert all(h.trusted for h in report.hosts)
        t_renew, report = timed(lambda: renewing.run_round(names))
        assert all(len(h.renewed) == 1 for h in report.hosts)
    return [
        Result(f"first (full) appraisal round, {BASE_ENTRIES:,}-entry IMA list", t_full, "s"),
        Result(f"incremental round: {BASE_ENTRIES:,} + {NEW_ENTRIES:,} new entries (tail sent)", t_inc * 1000, "ms"),
        Result(f"IMA bytes sent (base64) for +{NEW_ENTRIES:,} entries: tail only", sent_tail / 1e6, "MB"),
        Result("incremental round +1 entry, whole list sent (median of 3)", sorted(t_whole)[1] * 1000, "ms"),
        Result("IMA bytes sent (base64), whole list", sent_whole / 1e6, "MB"),
        Result("incremental round +1 entry, tail only sent (median of 3)", sorted(t_tail)[1] * 1000, "ms"),
        Result(f"incremental round after a VM restart (persisted state), +{NEW_ENTRIES:,}", t_resume * 1000, "ms"),
        Result(f"host re-attestations/s ({HOSTS} hosts, 50 entries, no renewal)", HOSTS / t_hosts, "1/s"),
        Result(f"host re-attestations/s ({HOSTS} hosts, each renewing 1 VNF certificate)", HOSTS / t_renew, "1/s"),
    ]
