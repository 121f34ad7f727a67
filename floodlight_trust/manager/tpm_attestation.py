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
    parse_public,
)
from floodlight_trust.protocol import b64decode, b64encode, validate
from floodlight_trust.reasons import ReasonLevel


@dataclass(frozen=True)
class TpmSettings:
    """The operator's TPM trust settings (configuration section ``[tpm]``)."""

    endorsement: EndorsementPolicy = field(default_factory=EndorsementPolicy)


def register_tpm(ctx: Any, settings: TpmSettings, host: str, *, actor: str) -> dict[str, Any]:
    """Register ``host``'s TPM through its registered agent; pin its AK. Raises VerificationError
    with every reason when the EK or the AK is not trusted (nothing is pinned then)."""
    record = ctx.storage.hosts.get(host)
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
    with ctx.storage.transaction() as tx:
        tx.audit.record(
            at=at, actor=actor, action="register-tpm", allowed=allowed, host=host, policy_version=ctx.policy_version,
            simulated=verdict.how == "unsafe", evidence=evidence,
            reasons=[{"rule": "host.tpm.registration", "message": r, "level": "deny"} for r in reasons]
            + [{"rule": "host.tpm.registration", "message": n, "level": ReasonLevel.NOTE.value} for n in verdict.notes],
        )  # fmt: skip
        if allowed:
            assert ak.name is not None
            tx.tpm.pin(host, ak_public=ak_bytes, ak_name=ak.name.hex(), ak_spki_sha256=ak.spki_sha256,
                       ek_spki_sha256=verdict.ek_spki_sha256, ek_trust=verdict.how, at=at)  # fmt: skip
    if not allowed:
        raise VerificationError(f"TPM of {host} not registered: " + "; ".join(reasons))
    return {"host": host, "registered": True, **evidence, "notes": list(verdict.notes)}
