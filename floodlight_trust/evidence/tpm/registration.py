"""Attestation-key trust at registration, as Keylime's registrar does it.

1. The endorsement key is trusted: its certificate chains to a manufacturer root the operator
   configured, or its public key is one the operator pinned. An EK without a certificate (swtpm,
   some vTPMs) and without a pin is accepted only under ``unsafe_accept_ek_without_certificate``,
   and then every time with a note saying so.
2. The attestation key is a restricted, fixed signing key (its TPMT_PUBLIC says so, and its name
   covers those attributes).
3. The AK is resident in the same TPM as the EK: the VM makes a credential for the AK's name,
   encrypted to the EK; only that TPM can activate it and return the secret.
4. The AK is then pinned to the host; quotes are verified with the pinned AK only.

Pure: the TPM's public areas and certificate, the roots and pins, the time in; a verdict out.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence.tpm.credential import Credential, make_credential
from floodlight_trust.evidence.tpm.ek import read_certificate, verify_ek_certificate
from floodlight_trust.evidence.tpm.keys import TpmKey, public_key_of
from floodlight_trust.evidence.tpm.quote import AK_REQUIRED_ATTRIBUTES
from floodlight_trust.evidence.tpm.structures import DIGEST_SIZES, TpmAlg, TpmPublic

UNSAFE_EK_WARNING = (
    "UNSAFE: the EK has no certificate and no pinned key; it is trusted only because "
    "tpm.unsafe_accept_ek_without_certificate is set (any TPM, including a simulator, passes)"
)


@dataclass(frozen=True)
class EndorsementPolicy:
    """What the operator trusts an EK by."""

    manufacturer_cas: Sequence[x509.Certificate] = ()
    pinned_ek_spki_sha256: Collection[str] = ()  # EK public keys the operator vouches for
    unsafe_accept_ek_without_certificate: bool = False


@dataclass(frozen=True)
class EndorsementVerdict:
    ok: bool
    ek_spki_sha256: str
    how: str  # "certificate", "pinned", "unsafe" or "" when refused
    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "ek_spki_sha256": self.ek_spki_sha256, "how": self.how,
                "reasons": list(self.reasons), "notes": list(self.notes)}  # fmt: skip


def judge_endorsement(
    ek: TpmPublic, ek_certificate: bytes | None, policy: EndorsementPolicy, *, at: datetime
) -> EndorsementVerdict:
    """Is this EK a genuine TPM's? Every reason is reported; a pin or a valid chain suffices."""
    fingerprint = TpmKey(public_key_of(ek), ek).spki_sha256
    reasons: list[str] = []
    notes: list[str] = []
    if not (ek.has(TpmPublic.RESTRICTED) and ek.has(TpmPublic.DECRYPT) and ek.has(TpmPublic.FIXED_TPM)):
        reasons.append(
            f"the EK is not a restricted, fixedTPM decryption key (objectAttributes {ek.object_attributes:08x})"
        )
    pinned = any(hmac.compare_digest(fingerprint, p.lower()) for p in policy.pinned_ek_spki_sha256)
    how = ""
    if ek_certificate:
        try:
            chain = verify_ek_certificate(
                read_certificate(ek_certificate), policy.manufacturer_cas, at=at, ek_public=ek
            )
        except FtrustError as e:
            reasons.append(f"EK certificate: {e}")
        else:
            notes.extend(chain.notes)
            if chain.ok:
                how = "certificate"
            elif not pinned:
                reasons.extend(chain.reasons)
            else:
                notes.extend(f"EK certificate not accepted ({r}); the EK is pinned" for r in chain.reasons)
    if not how and pinned:
        how = "pinned"
    if not how and not ek_certificate:
        if policy.unsafe_accept_ek_without_certificate:
            how = "unsafe"
            notes.append(UNSAFE_EK_WARNING)
        else:
            reasons.append(
                "the EK has no certificate and its public key is not pinned "
                f"(EK SPKI SHA-256 {fingerprint}): pin it, or set tpm.unsafe_accept_ek_without_certificate"
            )
    ok = not reasons and bool(how)
    return EndorsementVerdict(ok, fingerprint, how if ok else "", tuple(reasons), tuple(notes))


def check_attestation_key(ak: TpmPublic) -> list[str]:
    """Why ``ak`` cannot be an attestation key (empty: it can)."""
    problems = [f"the AK lacks {name}" for bit, name in AK_REQUIRED_ATTRIBUTES if not ak.has(bit)]
    if not ak.has(TpmPublic.SENSITIVE_DATA_ORIGIN):
        problems.append("the AK's private key was not generated in the TPM (sensitiveDataOrigin clear)")
    if ak.has(TpmPublic.DECRYPT):
        problems.append("the AK is also a decryption key")
    if ak.type == TpmAlg.RSA and ak.key_bits < 2048:
        problems.append(f"the AK is RSA-{ak.key_bits}, below 2048 bits")
    return problems


@dataclass(frozen=True)
class CredentialChallenge:
    """What the VM keeps (``secret``) and sends (``credential``) to prove the AK's residency."""

    secret: bytes
    credential: Credential

    def __repr__(self) -> str:  # the secret never reaches a log
        return "CredentialChallenge(secret=<hidden>)"


def challenge_for(ek: TpmPublic, ak: TpmPublic) -> CredentialChallenge:
    """A fresh secret, encrypted to ``ek`` and bound to ``ak``'s name."""
    secret = os.urandom(DIGEST_SIZES[ek.name_alg])
    return CredentialChallenge(secret, make_credential(ek, secret, ak.name))


def activation_matches(challenge: CredentialChallenge, returned: bytes) -> bool:
    """The TPM released the secret: the AK is resident with the EK (constant-time comparison)."""
    return hmac.compare_digest(challenge.secret, returned)
