"""CA issuance rate: certificates signed and recorded per second (EC P-256 CA, SQLite records)."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks import Result
from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.pki.records import CertificateRecords
from floodlight_trust.secrets import Secret
from floodlight_trust.storage import Database

N = 500


def run() -> list[Result]:
    at = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        records = CertificateRecords(Database(Path(tmp) / "state.db"))
        ca = CertificateAuthority.init(
            Path(tmp) / "ca", Secret("bench password", "env:B"), subject="CN=bench CA",
            crl_url="http://127.0.0.1/crl.der", ocsp_url="http://127.0.0.1/ocsp", at=at, records=records,
        )  # fmt: skip
        keys = [generate_private_key().public_key() for _ in range(N)]
        profile = CertificateProfile().render(vnf="bench", host="h")
        start = time.perf_counter()
        for i, key in enumerate(keys):
            issued = ca.issue(key, profile, at=at)
            if i % 10 == 0:
                ca.revoke(issued.serial, "superseded", at=at)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        crl = ca.crl(at=at, next_update=timedelta(seconds=60))
        crl_ms = (time.perf_counter() - start) * 1000
    rate = N / elapsed
    return [
        Result("certificates issued + recorded", rate, "certs/s", "> 200/s (VM enrollment target)", rate > 200),
        Result(f"CRL with {len(list(crl))} entries", crl_ms, "ms"),
    ]
