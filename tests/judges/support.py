"""In-memory inputs for the judges: claims, evidence, records and a policy, built from values only
(no database, no HTTP, no files): the judges are pure, so their tests need nothing else."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from floodlight_trust.claims import EnclaveClaims, EvidenceType, PlatformIdentity, TcbStatus
from floodlight_trust.evidence.ima import format_ascii_line, make_entry
from floodlight_trust.protocol.binding import host_report_data_for_digest, key_report_data
from floodlight_trust.protocol.evidence import EnclaveEvidence, HostEvidence, KeyMode
from floodlight_trust.storage.records import HostRecord, HostStatus, NoncePurpose, NonceRecord, VnfRegistration
from policy_lang import Policy, compile_policy_text

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NONCE = bytes(range(32))
INTEGRITY = "11" * 32  # the integrity enclave's MRENCLAVE
VNF_ENCLAVE = "22" * 32
SIGNER = "33" * 32
PCK = "44" * 32
FILES = {
    "boot_aggregate": hashlib.sha256(b"boot").digest(),
    "/usr/bin/ftrust-agent": hashlib.sha256(b"agent").digest(),
}


def policy(extra_host: str = "", profile: str = "", integrity: str = "integrity_enclave = host_integrity") -> Policy:
    allow = "\n".join(f'    allow "{p}" digest in {{"{d.hex()}"}}' for p, d in FILES.items())
    return compile_policy_text(
        f"""
host h {{
    template in {{"ima-ng"}}
{allow}
{extra_host}
    {integrity}
}}
enclave host_integrity {{
    identity: mrenclave in {{"{INTEGRITY}"}}
}}
enclave e {{
    identity: mrenclave in {{"{VNF_ENCLAVE}"}} and mrsigner in {{"{SIGNER}"}}
}}
enroll r for "vnf-*" {{ host = h  enclave = e  certificate {{ validity = 1h {profile} }} }}
"""
    )


def ima_list(files: dict[str, bytes] = FILES) -> bytes:
    return b"".join(format_ascii_line(make_entry(p, d), "sha1").encode() for p, d in files.items())


def claims(report_data: bytes, *, mrenclave: str = INTEGRITY, pck: str = PCK, **changes: Any) -> EnclaveClaims:
    c = EnclaveClaims(
        evidence_type=EvidenceType.DCAP,
        mrenclave=mrenclave,
        mrsigner=SIGNER,
        isv_prod_id=0,
        isv_svn=0,
        debug=False,
        mode64bit=True,
        attributes="00" * 16,
        misc_select=0,
        config_svn=0,
        config_id="00" * 64,
        isv_ext_prod_id="00" * 16,
        isv_family_id="00" * 16,
        report_data=report_data.hex(),
        tcb_status=TcbStatus.UP_TO_DATE,
        advisory_ids=(),
        qe_identity_status=TcbStatus.UP_TO_DATE,
        collateral_issued_at=AT - timedelta(days=1),
        platform=PlatformIdentity(fmspc="00906ea10000", pce_id="0000", pck_certificate_sha256=pck),
    )
    return replace(c, **changes)


def host_evidence(listing: bytes | None = None, *, offset: int = 0, host: str = "h1") -> HostEvidence:
    return HostEvidence(
        host=host,
        nonce=NONCE,
        evidence_type=EvidenceType.DCAP,
        quote=b"quote bytes (verified by the shell)",
        collateral=None,
        ima_list=ima_list() if listing is None else listing,
        ima_offset=offset,
        ima_source=None,
        tpm=None,
    )


def host_claims(listing: bytes | None = None, **changes: Any) -> EnclaveClaims:
    whole = ima_list() if listing is None else listing
    return claims(host_report_data_for_digest(NONCE, hashlib.sha256(whole).digest()), **changes)


def record(name: str = "h1", **changes: Any) -> HostRecord:
    r = HostRecord(
        name=name,
        agent_url=f"https://{name}.example:8443",
        host_policy=None,
        status=HostStatus.UNKNOWN,
        platform_pck_sha256=None,
        last_attested_at=None,
        last_trusted_at=None,
        last_contact_at=None,
        policy_version=None,
        reasons=(),
        ima_state_json=None,
        ima_entries=0,
        simulated=False,
    )
    return replace(r, **changes)


def trusted_record(name: str = "h1", **changes: Any) -> HostRecord:
    """A host trusted a minute before ``AT`` on platform ``PCK``."""
    at = AT - timedelta(seconds=60)
    trusted: dict[str, Any] = {
        "status": HostStatus.TRUSTED,
        "platform_pck_sha256": PCK,
        "last_attested_at": at,
        "last_trusted_at": at,
        "platform": {"pck_certificate_sha256": PCK},
        "platform_key": f"dcap-pck:{PCK}",
    }
    return record(name, **(trusted | changes))


def nonce(purpose: str = "host", host: str = "h1", vnf: str | None = None, **changes: Any) -> NonceRecord:
    n = NonceRecord(
        selector="00" * 8,
        verifier=bytes(32),
        purpose=NoncePurpose(purpose),
        host=host,
        vnf=vnf,
        issued_at=AT - timedelta(seconds=1),
        expires_at=AT + timedelta(seconds=60),
    )
    return replace(n, **changes)


def ec_spki() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def rsa_spki() -> bytes:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def enclave_evidence(spki: bytes, *, vnf: str = "vnf-a", key_mode: KeyMode | None = None) -> EnclaveEvidence:
    return EnclaveEvidence(
        host="h1",
        vnf=vnf,
        nonce=NONCE,
        evidence_type=EvidenceType.DCAP,
        quote=b"quote bytes (verified by the shell)",
        collateral=None,
        public_key=spki,
        key_mode=key_mode,
    )


def enclave_claims(spki: bytes, **changes: Any) -> EnclaveClaims:
    return claims(key_report_data(NONCE, spki), mrenclave=VNF_ENCLAVE, **changes)


def registration(vnf: str = "vnf-a", **changes: Any) -> VnfRegistration:
    r = VnfRegistration(
        host="h1",
        name=vnf,
        enroll_rule="r",
        registered_by="admin:test",
        expected_mrenclave=None,
        bound_public_key_sha256=None,
        bound_mrenclave=None,
        bound_at=None,
    )
    return replace(r, **changes)
