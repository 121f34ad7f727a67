"""The agent with `agent.tpm = "swtpm"`: the sim backend's host gets a SIMULATED TPM from swtpm only,
its simulated kernel extends the IMA list into PCR 10, and the evidence binds the TPM quote."""

from __future__ import annotations

import hashlib
from pathlib import Path

from floodlight_trust.cli.agent import build_agent
from floodlight_trust.config import from_mapping
from floodlight_trust.evidence.ima import appraise_measurement_list, format_ascii_line, make_entry
from floodlight_trust.evidence.sgx_quote import parse_quote
from floodlight_trust.evidence.tpm.keys import load_key
from floodlight_trust.evidence.tpm.quote import TpmCheck, verify_quote
from floodlight_trust.evidence.tpm.structures import parse_signature
from floodlight_trust.protocol import b64decode
from floodlight_trust.protocol.binding import host_report_data_with_tpm, tpm_qualifying_data
from floodlight_trust.protocol.evidence import HostTpmEvidence
from tests.support.tpm import require_swtpm

NONCE = bytes(range(32))


def _line(path: str) -> str:
    return format_ascii_line(make_entry(path, hashlib.sha256(path.encode()).digest()), "sha1")


def test_swtpm_agent_anchors_its_evidence_and_exposes_a_rewrite(tmp_path: Path) -> None:
    require_swtpm()
    ima = tmp_path / "ima.log"
    ima.write_text(_line("boot_aggregate") + _line("/usr/bin/containerd"))
    config = from_mapping(
        {
            "state": {"dir": str(tmp_path / "state")},
            "agent": {"name": "h1", "ima_log": str(ima), "tpm": "swtpm", "tpm_state_dir": str(tmp_path / "swtpm")},
        }
    )
    agent = build_agent(config)
    try:
        ak = load_key(agent.tpm.attestation_key())  # type: ignore[union-attr]
        doc = agent.host_evidence(NONCE)
        ev = HostTpmEvidence.from_json(doc["tpm"])
        listed = b64decode(doc["ima_list"], what="ima_list")
        # the SGX quote's REPORTDATA covers this TPM quote
        sgx = parse_quote(b64decode(doc["quote"], what="quote"))
        assert sgx.report.report_data == host_report_data_with_tpm(
            NONCE, hashlib.sha256(listed).digest(), ev.attest_bytes
        )

        ima_ok = appraise_measurement_list(listed, banks=("sha256",))
        ok = verify_quote(
            ev.attest, parse_signature(ev.signature_bytes), ak, ev.pcrs, tpm_qualifying_data(NONCE), ima=ima_ok
        )
        assert ok.ok, ok.findings
        # the kernel measures a new file; root rewrites the list to show another one in its place
        with ima.open("a") as f:
            f.write(_line("/tmp/miner"))
        agent.host_evidence(NONCE)  # the simulated kernel has extended it now
        ima.write_text(_line("boot_aggregate") + _line("/usr/bin/containerd") + _line("/usr/bin/runc"))
        doc = agent.host_evidence(NONCE)
        ev = HostTpmEvidence.from_json(doc["tpm"])
        forged = appraise_measurement_list(b64decode(doc["ima_list"], what="ima_list"), banks=("sha256",))
        assert forged.ok  # consistent on its own
        bad = verify_quote(
            ev.attest, parse_signature(ev.signature_bytes), ak, ev.pcrs, tpm_qualifying_data(NONCE), ima=forged
        )
        assert [f.code for f in bad.denials()] == [TpmCheck.IMA_PCR]
    finally:
        agent.tpm.simulator.stop()  # type: ignore[union-attr]
