"""The Verification Manager's side of TPM anchoring: register a host's TPM (pin its AK) and judge the
TPM quote that comes with each round of host evidence (docs/protocol.md, "TPM-anchored host evidence").

Registration is an admin's act on a host an admin registered (``ftrust vm hosts tpm-register``): the
VM asks the host's registered agent for its EK, EK certificate and AK, judges the EK against the
operator's manufacturer roots or pins (:mod:`floodlight_trust.evidence.tpm.registration`), proves the
AK resident with MakeCredential/ActivateCredential, and pins the AK to the host. From then on every
round of that host must carry a TPM quote signed by exactly that AK, bound to the nonce and to the
SGX quote, whose PCR 10 the IMA list replays to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from floodlight_trust.errors import FtrustError, VerificationError
from floodlight_trust.evidence.tpm.keys import TpmKey, public_key_of
from floodlight_trust.evidence.tpm.registration import (
    EndorsementPolicy,
    activation_matches,
    challenge_for,
    check_attestation_key,
    judge_endorsement,
)
from floodlight_trust.evidence.tpm.structures import (
    ClockInfo,
    parse_public,
)
from floodlight_trust.protocol import b64decode, b64encode, validate
from floodlight_trust.protocol.evidence import HostTpmEvidence
from floodlight_trust.reasons import ReasonLevel
from floodlight_trust.storage.database import Database, Migration

MIGRATIONS = (
    Migration(
        "manager-tpm",
        1,
        """
        CREATE TABLE manager_host_tpm (
            host TEXT PRIMARY KEY, ak_public BLOB NOT NULL, ak_name TEXT NOT NULL, ak_spki_sha256 TEXT NOT NULL,
            ek_spki_sha256 TEXT NOT NULL, ek_trust TEXT NOT NULL, registered_at TEXT NOT NULL,
            last_clock_json TEXT, boot_pcrs_json TEXT)
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class TpmPin:
    """A host's registered TPM: the AK its quotes must be signed by, and the last verified clock."""

    host: str
    ak_public: bytes  # TPMT_PUBLIC
    ak_name: str
    ak_spki_sha256: str
    ek_spki_sha256: str
    ek_trust: str  # "certificate", "pinned" or "unsafe"
    registered_at: str
    last_clock: ClockInfo | None
    last_firmware: int | None
    boot_pcrs: dict[str, dict[int, str]] | None = None  # of the first verified round after registration

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "ak_name": self.ak_name, "ak_spki_sha256": self.ak_spki_sha256,
                "ek_spki_sha256": self.ek_spki_sha256, "ek_trust": self.ek_trust,
                "registered_at": self.registered_at}  # fmt: skip


class TpmRegistry:
    """The pinned TPMs of hosts (its own table and migration: contained beside the host records)."""

    def __init__(self, db: Database):
        self.db = db
        db.migrate(MIGRATIONS)

    def get(self, host: str) -> TpmPin | None:
        rows = self.db.query("SELECT * FROM manager_host_tpm WHERE host = ?", (host,))
        if not rows:
            return None
        row = rows[0]
        clock, firmware = None, None
        if row["last_clock_json"]:
            c = json.loads(row["last_clock_json"])
            clock = ClockInfo(int(c["clock"]), int(c["reset_count"]), int(c["restart_count"]), bool(c["safe"]))
            firmware = int(c["firmware"])
        boot = None
        if row["boot_pcrs_json"]:
            boot = {
                b: {int(p): str(v) for p, v in vals.items()} for b, vals in json.loads(row["boot_pcrs_json"]).items()
            }
        return TpmPin(row["host"], bytes(row["ak_public"]), row["ak_name"], row["ak_spki_sha256"], row["ek_spki_sha256"],
                      row["ek_trust"], row["registered_at"], clock, firmware, boot)  # fmt: skip

    def pin(
        self, tx: Any, host: str, ak_public: bytes, ak: TpmKey, ek_spki_sha256: str, ek_trust: str, at: str
    ) -> None:
        assert ak.name is not None
        tx.execute(
            "INSERT INTO manager_host_tpm (host, ak_public, ak_name, ak_spki_sha256, ek_spki_sha256, ek_trust, registered_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET ak_public = excluded.ak_public,"
            " ak_name = excluded.ak_name, ak_spki_sha256 = excluded.ak_spki_sha256, ek_spki_sha256 = excluded.ek_spki_sha256,"
            " ek_trust = excluded.ek_trust, registered_at = excluded.registered_at, last_clock_json = NULL,"
            " boot_pcrs_json = NULL",
            (host, ak_public, ak.name.hex(), ak.spki_sha256, ek_spki_sha256, ek_trust, at),
        )

    def record_round(self, tx: Any, host: str, evidence: HostTpmEvidence) -> None:
        """A verified round: its clock (for the next round) and, the first time, the boot PCRs."""
        c = evidence.attest.clock_info
        doc = {"clock": c.clock, "reset_count": c.reset_count, "restart_count": c.restart_count, "safe": c.safe,
               "firmware": evidence.attest.firmware_version}  # fmt: skip
        boot = json.dumps({b: {str(p): v for p, v in vals.items()} for b, vals in evidence.boot_pcrs().items()})
        tx.execute(
            "UPDATE manager_host_tpm SET last_clock_json = ?, boot_pcrs_json = COALESCE(boot_pcrs_json, ?) WHERE host = ?",
            (json.dumps(doc), boot, host),
        )


@dataclass(frozen=True)
class TpmSettings:
    """The operator's TPM trust settings (configuration section ``[tpm]``)."""

    endorsement: EndorsementPolicy = field(default_factory=EndorsementPolicy)


def register_tpm(ctx: Any, registry: TpmRegistry, settings: TpmSettings, host: str, *, actor: str) -> dict[str, Any]:
    """Register ``host``'s TPM through its registered agent; pin its AK. Raises VerificationError
    with every reason when the EK or the AK is not trusted (nothing is pinned then)."""
    record = ctx.state.host(host)
    agent = ctx.agent(record)
    at: datetime = ctx.now()
    doc = agent.tpm_registration()
    validate("tpm_registration", doc)
    ek_bytes = b64decode(doc["ek_public"], what="tpm_registration.ek_public")
    ak_bytes = b64decode(doc["ak_public"], what="tpm_registration.ak_public")
    cert = b64decode(doc["ek_certificate"], what="tpm_registration.ek_certificate") if doc["ek_certificate"] else None
    ek, ak_public = parse_public(ek_bytes), parse_public(ak_bytes)
    verdict = judge_endorsement(ek, cert, settings.endorsement, at=at)
    reasons = list(verdict.reasons) + check_attestation_key(ak_public)
    resident = False
    if not reasons:
        challenge = challenge_for(ek, ak_public)
        try:
            answer = agent.tpm_activate({"credential": b64encode(challenge.credential.to_tools_format())})
            validate("tpm_activated", answer)
            resident = activation_matches(challenge, b64decode(answer["secret"], what="tpm_activated.secret"))
        except FtrustError as e:
            reasons.append(f"the TPM did not activate the credential: {e.message}")
        else:
            if not resident:
                reasons.append("the TPM returned another secret: the AK is not resident beside this EK")
    ak = TpmKey(public_key_of(ak_public), ak_public)
    evidence = {"ek": verdict.to_json(), "ak_name": ak_public.name.hex(), "ak_spki_sha256": ak.spki_sha256,
                "activated": resident}  # fmt: skip
    allowed = not reasons
    with ctx.db.transaction() as tx:
        ctx.audit.record(
            tx, at=at, actor=actor, action="register-tpm", allowed=allowed, host=host, policy_version=ctx.policy_version,
            simulated=verdict.how == "unsafe", evidence=evidence,
            reasons=[{"rule": "host.tpm.registration", "message": r, "level": "deny"} for r in reasons]
            + [{"rule": "host.tpm.registration", "message": n, "level": ReasonLevel.NOTE.value} for n in verdict.notes],
        )  # fmt: skip
        if allowed:
            registry.pin(tx, host, ak_bytes, ak, verdict.ek_spki_sha256, verdict.how, at.isoformat())
    if not allowed:
        raise VerificationError(f"TPM of {host} not registered: " + "; ".join(reasons))
    return {"host": host, "registered": True, **evidence, "notes": list(verdict.notes)}
