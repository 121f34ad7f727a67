"""A container host with a TPM for the deployment tests: a registered host (a machine of its own)
whose agent anchors its evidence in swtpm, and whose simulated kernel extends every IMA entry into
PCR 10 as Linux does. The list file is what the agent reads; ``sync_list`` writes the kernel's list
or, for an attack, root's forgery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.service import Agent
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.evidence.ima import ImaRecord, make_entry, serialize_ascii, template_hash
from floodlight_trust.evidence.tpm.ek import read_certificates
from floodlight_trust.evidence.tpm.registration import EndorsementPolicy
from floodlight_trust.manager.tpm_attestation import TpmSettings
from tests.support.tpm import SimulatedKernel


@dataclass
class TpmHost:
    name: str
    kernel: SimulatedKernel
    agent: Agent
    ima_file: Path
    sim: swtpm.Swtpm
    host: Any  # the deployment's Host (add_vnf, server)

    def sync_list(self, records: list[ImaRecord] | None = None) -> None:
        self.ima_file.write_bytes(serialize_ascii(records if records is not None else self.kernel.records))

    def measure_record(self, record: ImaRecord) -> None:
        self.kernel.records.append(record)
        self.kernel.tpm.extend(10, {b: template_hash(record, b) for b in ("sha1", "sha256")})


def manufacturer_roots(state: Path) -> list[Any]:
    return [c for p in swtpm.manufacturer_certificates(state) for c in read_certificates(p.read_bytes(), p.name)]


@contextmanager
def tpm_host(world: Any, swtpm_state: Path, files: dict[str, bytes]) -> Iterator[TpmHost]:
    """A registered host measured at boot (``files``), its TPM trusted through swtpm's local CA."""
    world.service.vm.tpm_settings = TpmSettings(EndorsementPolicy(manufacturer_cas=manufacturer_roots(swtpm_state)))
    with swtpm.Swtpm(swtpm_state) as sim:
        tpm = Tpm2ToolsTpm(sim.tcti)
        kernel = SimulatedKernel(tpm)
        plain = world.start_host(files=files)
        plain.agent.tpm = tpm
        host = TpmHost(plain.name, kernel, plain.agent, plain.ima_file, sim, plain)
        for path, digest in files.items():
            host.measure_record(make_entry(path, digest))
        host.sync_list()
        yield host
