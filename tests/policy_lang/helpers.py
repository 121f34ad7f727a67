from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from floodlight_trust.claims import (
    ClaimSet,
    EnclaveClaims,
    EvidenceType,
    ImaClaims,
    PlatformIdentity,
    SignatureStatus,
    TcbStatus,
)

PHALA_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
PHALA_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
AT = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)


def enclave(**changes: Any) -> EnclaveClaims:
    """The facts of the real phala quote (PROVENANCE.md), with ``changes``."""
    base: dict[str, Any] = dict(
        evidence_type=EvidenceType.DCAP,
        mrenclave=PHALA_MRENCLAVE,
        mrsigner=PHALA_MRSIGNER,
        isv_prod_id=0,
        isv_svn=0,
        debug=False,
        mode64bit=True,
        attributes="05000000000000000700000000000000",
        misc_select=0,
        config_svn=0,
        config_id="0" * 128,
        isv_ext_prod_id="0" * 32,
        isv_family_id="0" * 32,
        report_data="0" * 128,
        tcb_status=TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED,
        advisory_ids=("INTEL-SA-00289", "INTEL-SA-00615"),
        qe_identity_status=TcbStatus.UP_TO_DATE,
        collateral_issued_at=datetime(2025, 6, 19, 10, 56, 11, tzinfo=UTC),
        platform=PlatformIdentity(fmspc="00a067110000"),
    )
    base.update(changes)
    return EnclaveClaims(**base)


def ima(
    rows: list[tuple[str, str]],
    *,
    template: str = "ima-ng",
    violations: frozenset[int] = frozenset(),
    signatures: list[tuple[SignatureStatus, str | None]] | None = None,
    boot_aggregate: str | None = None,
    first_index: int = 0,
    log_hash_algorithm: str | None = "sha1",  # what the appraisal of a classic list says
) -> ImaClaims:
    n = len(rows)
    sigs = signatures or [(SignatureStatus.NONE, None)] * n
    return ImaClaims(
        templates=[template] * n,
        paths=[p for p, _ in rows],
        digest_algorithms=["sha256"] * n,
        digests=[d for _, d in rows],
        signatures=[s for s, _ in sigs],
        signature_key_ids=[k for _, k in sigs],
        violations=violations,
        first_index=first_index,
        boot_aggregate=boot_aggregate,
        log_hash_algorithm=log_hash_algorithm,
    )


def host_claims(rows: list[tuple[str, str]], **kw: Any) -> ClaimSet:
    return ClaimSet(verified_at=AT, ima=ima(rows, **kw))


def enclave_claims(**changes: Any) -> ClaimSet:
    return ClaimSet(verified_at=AT, enclave=enclave(**changes))


def d(n: int) -> str:
    """A distinct 64-hex digest."""
    return f"{n:064x}"
