"""Verify a TPM 2.0 quote: AK signature, nonce binding, PCR digest, PCR 10 against the IMA list,
and the TPM's counters between rounds.

Every check runs and reports (sigstore's ``AllOf`` shape): a :class:`QuoteVerification` holds one
:class:`TpmFinding` per failed check, each with a stable code, so a caller sees at once that a
tampered quote has both a bad magic and a bad signature. Pure: bytes, keys, the previous round's
values in; a frozen result out. Nothing here reads a clock or a file.

PCR 10 and the IMA list. The kernel extends every measurement's template hash into PCR 10 of each
active bank; the list the host sends must replay to the value the TPM signed. The replay is the IMA
appraisal's (:func:`~floodlight_trust.evidence.ima.appraise_measurement_list`), incremental when
the caller keeps its :class:`~floodlight_trust.evidence.ima.ImaState` between rounds, so the
quoted value is compared with the running value and no entry is hashed twice. A list that does not
replay was rewritten after the kernel measured it: the first entry not backed by an earlier
verified quote (or the first entry whose template hash does not recompute) is named.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from floodlight_trust.evidence.ima import FindingKind, ImaAppraisal
from floodlight_trust.evidence.tpm.keys import TpmKey
from floodlight_trust.evidence.tpm.structures import (
    HASHERS,
    Attest,
    ClockInfo,
    PcrValues,
    Signature,
    TpmAlg,
    TpmPublic,
)

IMA_PCR = 10
ACCEPTED_SIGNATURE_HASHES = ("sha256", "sha384", "sha512")
# The bank PCR 10 is compared in when a quote covers several: the strongest the IMA replay has.
_BANK_PREFERENCE = ("sha256", "sha384", "sha512", "sha1")
_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# What an attestation key must be: a restricted signing key that cannot leave its TPM. A key
# without ``restricted`` signs any digest, including one of a forged TPMS_ATTEST.
AK_REQUIRED_ATTRIBUTES = (
    (TpmPublic.RESTRICTED, "restricted"),
    (TpmPublic.SIGN, "sign"),
    (TpmPublic.FIXED_TPM, "fixedTPM"),
    (TpmPublic.FIXED_PARENT, "fixedParent"),
)


class TpmCheck(StrEnum):
    """Stable codes of the TPM checks (what reasons, metrics and tests key on)."""

    MAGIC = "host.tpm.magic"
    SIGNATURE = "host.tpm.signature"
    AK_ATTRIBUTES = "host.tpm.ak_attributes"
    NONCE = "host.tpm.nonce"
    PCR_DIGEST = "host.tpm.pcr_digest"
    PCR_MISSING = "host.tpm.pcr_missing"
    IMA_PCR = "host.tpm.ima_pcr10"
    REBOOT = "host.tpm.reboot"
    RESTART = "host.tpm.restart"
    COUNTERS = "host.tpm.counters"
    CLOCK = "host.tpm.clock"
    FIRMWARE = "host.tpm.firmware"


DENY = "deny"
NOTE = "note"


@dataclass(frozen=True, slots=True)
class TpmFinding:
    code: TpmCheck
    message: str
    level: str = DENY
    evidence: Any = None

    @property
    def denies(self) -> bool:
        return self.level == DENY

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.value, "level": self.level, "message": self.message, "evidence": self.evidence}


class BootChange(StrEnum):
    FIRST = "first"  # no earlier round to compare with
    SAME_BOOT = "same-boot"
    RESUMED = "resumed"  # restartCount rose: TPM2_Startup(STATE), e.g. resume from hibernation
    REBOOTED = "rebooted"  # resetCount rose: TPM2_Startup(CLEAR)


@dataclass(frozen=True, slots=True)
class RoundComparison:
    change: BootChange
    findings: tuple[TpmFinding, ...]

    @property
    def rebooted(self) -> bool:
        return self.change is BootChange.REBOOTED


def compare_rounds(previous: ClockInfo | None, current: ClockInfo, *, previous_firmware: int | None = None,
                   firmware: int | None = None) -> RoundComparison:  # fmt: skip
    """How ``current`` follows ``previous`` (the last verified quote of the same AK).

    Within one boot (same resetCount and restartCount) the clock must advance; a reboot (resetCount
    up) or a resume (restartCount up) is named as a note, since the caller must start the IMA
    appraisal over after a reboot; counters that go backwards mean a replayed quote or another TPM.
    Across a reboot the clock may only go back if the TPM says it is not ``safe``.
    """
    if previous is None:
        return RoundComparison(BootChange.FIRST, ())
    found: list[TpmFinding] = []
    evidence = {
        "previous": {
            "reset_count": previous.reset_count,
            "restart_count": previous.restart_count,
            "clock": previous.clock,
        },
        "current": {"reset_count": current.reset_count, "restart_count": current.restart_count, "clock": current.clock},
    }
    if previous_firmware is not None and firmware is not None and previous_firmware != firmware:
        found.append(
            TpmFinding(
                TpmCheck.FIRMWARE, f"TPM firmware changed from {previous_firmware:016x} to {firmware:016x}", NOTE
            )
        )
    if current.reset_count < previous.reset_count:
        found.append(TpmFinding(TpmCheck.COUNTERS, f"TPM resetCount went back from {previous.reset_count} to "
                                f"{current.reset_count}: a replayed quote or another TPM", evidence=evidence))  # fmt: skip
        return RoundComparison(BootChange.SAME_BOOT, tuple(found))
    if current.reset_count > previous.reset_count:
        found.append(TpmFinding(TpmCheck.REBOOT, f"the host rebooted: TPM resetCount {previous.reset_count} -> "
                                f"{current.reset_count}; the IMA list starts over", NOTE, evidence))  # fmt: skip
        if current.clock < previous.clock and current.safe:
            found.append(TpmFinding(TpmCheck.CLOCK, f"TPM clock went back across the reboot ({previous.clock} -> "
                                    f"{current.clock} ms) although the TPM reports it safe", evidence=evidence))  # fmt: skip
        return RoundComparison(BootChange.REBOOTED, tuple(found))
    if current.restart_count < previous.restart_count:
        found.append(TpmFinding(TpmCheck.COUNTERS, f"TPM restartCount went back from {previous.restart_count} to "
                                f"{current.restart_count} in the same boot: a replayed quote", evidence=evidence))  # fmt: skip
        return RoundComparison(BootChange.SAME_BOOT, tuple(found))
    change = BootChange.SAME_BOOT
    if current.restart_count > previous.restart_count:
        change = BootChange.RESUMED
        found.append(TpmFinding(TpmCheck.RESTART, f"the TPM was restarted (resume): restartCount "
                                f"{previous.restart_count} -> {current.restart_count}", NOTE, evidence))  # fmt: skip
    if current.clock < previous.clock or (change is BootChange.SAME_BOOT and current.clock == previous.clock):
        found.append(TpmFinding(TpmCheck.CLOCK, f"TPM clock did not advance within one boot ({previous.clock} -> "
                                f"{current.clock} ms): a replayed or stale quote", evidence=evidence))  # fmt: skip
    return RoundComparison(change, tuple(found))


@dataclass(frozen=True)
class QuoteVerification:
    """Every check of one quote; ``ok`` when none of them denies."""

    attest: Attest
    signature: Signature
    ak: TpmKey
    findings: tuple[TpmFinding, ...]
    pcrs: PcrValues
    ima_bank: str | None = None  # the bank PCR 10 was compared in, when an IMA list was given
    round: RoundComparison = field(default_factory=lambda: RoundComparison(BootChange.FIRST, ()))

    @property
    def ok(self) -> bool:
        return not any(f.denies for f in self.findings)

    def denials(self) -> list[TpmFinding]:
        return [f for f in self.findings if f.denies]

    def failed(self, code: TpmCheck) -> bool:
        return any(f.code is code and f.denies for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "quote": self.attest.to_json(),
            "signature": {"scheme": self.signature.scheme.name.lower(), "hash": self.signature.hash},
            "ak": self.ak.to_json(),
            "ima_bank": self.ima_bank,
            "boot": self.round.change.value,
            "findings": [f.to_json() for f in self.findings],
        }


def verify_quote(
    attest: Attest,
    signature: Signature,
    ak: TpmKey,
    pcrs: PcrValues,
    nonce: bytes,
    *,
    ima: ImaAppraisal | None = None,
    previous: ClockInfo | None = None,
    previous_firmware: int | None = None,
) -> QuoteVerification:
    """Run every check of a quote and return them all.

    Guarantees: the signature is verified with ``ak`` over exactly ``attest.raw`` (RSASSA, RSAPSS or
    ECDSA, SHA-256/384/512; SHA-1 refused); ``extraData`` equals ``nonce`` (constant time; an empty
    nonce means a quote with no qualifying data); the PCR digest equals the signature hash over the
    claimed ``pcrs`` in selection order, with every selected PCR present; an AK given in a TPM form
    is a restricted, fixed signing key. With ``ima`` (this round's appraisal, incremental or whole),
    PCR 10 in the quoted bank equals the replay. With ``previous`` (the last verified round's clock
    info), the counters and clock follow it (:func:`compare_rounds`).
    """
    found: list[TpmFinding] = []
    if not attest.magic_ok:
        found.append(TpmFinding(TpmCheck.MAGIC, f"magic is {attest.magic:08x}, not TPM_GENERATED_VALUE ff544347: "
                                "the structure was not produced by a TPM"))  # fmt: skip
    found += _check_signature(attest, signature, ak)
    if not hmac.compare_digest(attest.extra_data, nonce):
        found.append(TpmFinding(TpmCheck.NONCE, f"extraData {attest.extra_data.hex() or '(empty)'} is not the expected "
                                f"nonce binding {nonce.hex() or '(empty)'}: the quote was made for another challenge",
                                evidence={"extra_data": attest.extra_data.hex(), "expected": nonce.hex()}))  # fmt: skip
    digest_ok = _check_pcr_digest(attest, signature.hash, pcrs, found)
    bank = None
    if ima is not None:
        bank = _check_ima(attest, pcrs, ima, digest_ok, found)
    comparison = compare_rounds(previous, attest.clock_info, previous_firmware=previous_firmware,
                                firmware=attest.firmware_version)  # fmt: skip
    found += comparison.findings
    return QuoteVerification(attest, signature, ak, tuple(found), pcrs, bank, comparison)


def _check_signature(attest: Attest, sig: Signature, ak: TpmKey) -> list[TpmFinding]:
    found: list[TpmFinding] = []
    pub = ak.tpm_public
    if pub is not None:
        missing = [name for bit, name in AK_REQUIRED_ATTRIBUTES if not pub.has(bit)]
        if missing:
            found.append(TpmFinding(TpmCheck.AK_ATTRIBUTES, f"the AK is not an attestation key: objectAttributes "
                                    f"{pub.object_attributes:08x} lack {', '.join(missing)}"))  # fmt: skip
        if pub.scheme != TpmAlg.NULL and (pub.scheme != sig.scheme or pub.scheme_hash != sig.hash):
            found.append(TpmFinding(TpmCheck.SIGNATURE, f"the signature is {sig.scheme.name.lower()}/{sig.hash}, the "
                                    f"AK's scheme is {TpmAlg(pub.scheme).name.lower()}/{pub.scheme_hash}"))  # fmt: skip
    if sig.hash not in ACCEPTED_SIGNATURE_HASHES:
        found.append(
            TpmFinding(TpmCheck.SIGNATURE, f"signature hash {sig.hash} is not accepted (SHA-256, SHA-384 or SHA-512)")
        )
        return found
    h = _CRYPTO_HASHES[sig.hash]()
    key = ak.public_key
    try:
        if sig.scheme == TpmAlg.ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise _Mismatch("an ECDSA signature, but the AK is an RSA key")
            der = encode_dss_signature(int.from_bytes(sig.ecdsa_r, "big"), int.from_bytes(sig.ecdsa_s, "big"))
            key.verify(der, attest.raw, ec.ECDSA(h))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise _Mismatch(f"an {sig.scheme.name} signature, but the AK is an EC key")
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if sig.scheme == TpmAlg.RSASSA
                else padding.PSS(mgf=padding.MGF1(_CRYPTO_HASHES[sig.hash]()), salt_length=padding.PSS.AUTO)
            )
            key.verify(sig.rsa, attest.raw, pad, h)
    except InvalidSignature:
        found.append(TpmFinding(TpmCheck.SIGNATURE, f"the {sig.scheme.name.lower()}/{sig.hash} signature does not verify "
                                f"with the AK ({ak.describe()}, SPKI SHA-256 {ak.spki_sha256[:16]}...) over the quote"))  # fmt: skip
    except _Mismatch as e:
        found.append(TpmFinding(TpmCheck.SIGNATURE, str(e)))
    return found


class _Mismatch(Exception):
    pass


def pcr_digest(attest: Attest, hash_name: str, pcrs: PcrValues) -> tuple[bytes, list[tuple[str, int]]]:
    """The digest of ``pcrs`` in the quote's selection order, and the selected PCRs that are missing."""
    h = HASHERS[hash_name]()
    missing: list[tuple[str, int]] = []
    for s in attest.quote.selections:
        bank = pcrs.get(s.bank, {})
        for p in s.pcrs:
            value = bank.get(p)
            if value is None:
                missing.append((s.bank, p))
            else:
                h.update(value)
    return h.digest(), missing


def _check_pcr_digest(attest: Attest, hash_name: str, pcrs: PcrValues, found: list[TpmFinding]) -> bool:
    if hash_name not in HASHERS:
        return False
    digest, missing = pcr_digest(attest, hash_name, pcrs)
    if missing:
        shown = ", ".join(f"{b}:{p}" for b, p in missing[:8])
        found.append(TpmFinding(TpmCheck.PCR_MISSING, f"{len(missing)} quoted PCR values were not supplied ({shown})"))
        return False
    if not hmac.compare_digest(digest, attest.quote.pcr_digest):
        found.append(TpmFinding(TpmCheck.PCR_DIGEST, f"the supplied PCR values hash to {digest.hex()}, the quote's "
                                f"pcrDigest is {attest.quote.pcr_digest.hex()}: they are not the values the TPM quoted"))  # fmt: skip
        return False
    return True


def ima_bank(attest: Attest, available: Sequence[str]) -> str | None:
    """The bank in which PCR 10 is compared: quoted, replayed, and the strongest of those."""
    quoted = [s.bank for s in attest.quote.selections if IMA_PCR in s.pcrs]
    for bank in _BANK_PREFERENCE:
        if bank in quoted and bank in available:
            return bank
    return None


def quoted_ima_banks(attest: Attest) -> tuple[str, ...]:
    return tuple(s.bank for s in attest.quote.selections if IMA_PCR in s.pcrs)


def _check_ima(
    attest: Attest, pcrs: PcrValues, ima: ImaAppraisal, digest_ok: bool, found: list[TpmFinding]
) -> str | None:
    quoted = quoted_ima_banks(attest)
    if not quoted:
        found.append(
            TpmFinding(TpmCheck.IMA_PCR, "the quote does not cover PCR 10, so it does not anchor the IMA list")
        )
        return None
    replayed = ima.state.pcr_values
    bank = ima_bank(attest, tuple(replayed))
    if bank is None:
        found.append(TpmFinding(TpmCheck.IMA_PCR, f"PCR 10 is quoted in {', '.join(quoted)}, the IMA list was replayed "
                                f"into {', '.join(replayed) or 'no bank'}"))  # fmt: skip
        return None
    if not digest_ok:
        return bank  # the claimed values are not the quoted ones: comparing them would prove nothing
    want = pcrs[bank][IMA_PCR].hex()
    got = replayed[bank]
    if hmac.compare_digest(want, got):
        return bank
    first_new = ima.claims.first_index
    broken = next((f for f in ima.findings if f.kind is FindingKind.TEMPLATE_HASH_MISMATCH), None)
    if broken is not None and broken.location.index is not None:
        where = f"entry {broken.location.index} ({broken.message})"
        first = broken.location.index
    else:
        first = first_new
        count = ima.entry_count
        if first_new == 0:
            where = "entry 0 (no earlier verified quote: the whole list is in question)"
        elif count > first_new:
            where = f"entry {first_new}, the first of entries {first_new}..{count - 1} since the last verified quote"
        else:
            where = (f"entry {first_new}: the list ends where the last verified quote did, so the entries "
                     "the TPM measured since were removed")  # fmt: skip
    found.append(TpmFinding(
        TpmCheck.IMA_PCR,
        f"PCR 10 ({bank}) in the quote is {want}, the IMA list ({ima.entry_count} entries) replays to {got}: "
        f"the list is not what the kernel measured; first differing entry: {where}",
        evidence={"bank": bank, "quoted": want, "replayed": got, "first_differing_entry": first,
                  "entries": ima.entry_count},
    ))  # fmt: skip
    return bank
