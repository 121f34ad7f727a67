"""swtpm for the tests: a TPM 2.0 simulator started on a temporary state directory, and a simulated
host whose kernel extends each IMA measurement into PCR 10 of that TPM, as Linux does.

Skipped, saying so, when swtpm or tpm2-tools are missing (``make setup`` installs them as root);
under CI (``CI`` set) a missing swtpm fails instead, so a green CI cannot hide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.tpm import Tpm2ToolsTpm, tools_available
from floodlight_trust.evidence.ima import ImaRecord, make_entry, serialize_ascii, template_hash
from tests.support.requires import missing

MISSING = "swtpm, swtpm-tools or tpm2-tools not installed (make setup as root, or apt-get install swtpm swtpm-tools tpm2-tools)"


def require_swtpm() -> None:
    if swtpm.available() and tools_available():
        return
    missing(MISSING)


class SimulatedKernel:
    """The host side of IMA: a measurement list and the TPM it extends (both only ever appended to)."""

    def __init__(self, tpm: Tpm2ToolsTpm) -> None:
        self.tpm = tpm
        self.records: list[ImaRecord] = []

    def measure(self, path: str, content: bytes) -> int:
        """Measure a file as the kernel does: append the entry, extend PCR 10 in every bank."""
        import hashlib

        record = make_entry(path, hashlib.sha256(content).digest(), template="ima-ng", algo="sha256")
        self.records.append(record)
        self.tpm.extend(10, {"sha1": template_hash(record, "sha1"), "sha256": template_hash(record, "sha256")})
        return len(self.records) - 1

    def boot(self) -> None:
        """A fresh boot: the list starts again with the boot aggregate (PCR 10 was reset by the TPM)."""
        self.records = []
        self.measure("boot_aggregate", b"boot")

    def ascii_list(self) -> bytes:
        return serialize_ascii(self.records)


@pytest.fixture(scope="session")
def swtpm_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manufactured TPM state (EKs with certificates from a local CA), made once per session."""
    require_swtpm()
    return swtpm.manufacture(tmp_path_factory.mktemp("swtpm") / "state")


@pytest.fixture(scope="session")
def other_swtpm_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, independent TPM (another EK, another AK)."""
    require_swtpm()
    return swtpm.manufacture(tmp_path_factory.mktemp("swtpm-other") / "state")


@pytest.fixture()
def running_swtpm(swtpm_state: Path) -> Iterator[swtpm.Swtpm]:
    with swtpm.Swtpm(swtpm_state) as sim:
        yield sim
