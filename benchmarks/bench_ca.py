"""CA issuance rate: certificates signed and recorded per second (EC P-256 CA, SQLite records).

Each issue commits its record in its own fsync'ed transaction, so the figure follows the disk and the
machine's load: it is the median of interleaved rounds, with the CRL build in the same rounds.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks import Result, interleaved
from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.sqlite import SqliteStorage

N = 100
ROUNDS = 5


def run() -> list[Result]:
    at = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        records = SqliteStorage(Path(tmp) / "state.db").certificates()
        ca = CertificateAuthority.init(
            Path(tmp) / "ca", Secret("bench password", "env:B"), subject="CN=bench CA",
            crl_url="http://127.0.0.1/crl.der", ocsp_url="http://127.0.0.1/ocsp", at=at, records=records,
        )  # fmt: skip
        keys = iter([generate_private_key().public_key() for _ in range(N * ROUNDS * 2 + 10)])
        profile = CertificateProfile().render(vnf="bench", host="h")
        issued = 0

        def issue() -> None:
            nonlocal issued
            cert = ca.issue(next(keys), profile, at=at)
            if issued % 10 == 0:
                ca.revoke(cert.serial, "superseded", at=at)
            issued += 1

        t = interleaved(
            {"issue": issue, "crl": lambda: ca.crl(at=at, next_update=timedelta(seconds=60))},
            rounds=ROUNDS,
            calls={"issue": N, "crl": 5},
        )
        entries = len(list(ca.crl(at=at, next_update=timedelta(seconds=60))))
    rate = 1 / t["issue"]
    return [
        Result(
            "certificates issued + recorded",
            rate,
            "certs/s",
            "> 200/s (VM enrollment target)",
            rate > 200,
            work="build + sign (P-256) + one fsync'ed SQLite transaction per certificate; 1 in 10 also revoked",
        ),
        Result(
            f"CRL with about {entries} entries", t["crl"] * 1000, "ms", work="build + sign the CRL from the records"
        ),
    ]
