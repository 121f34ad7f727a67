"""AK trust at registration against swtpm: the EK by certificate, by pin, or only under the UNSAFE
setting; the AK's attributes; MakeCredential/ActivateCredential proving the AK is in that TPM."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.errors import ServiceError
from floodlight_trust.evidence.tpm.ek import read_certificates
from floodlight_trust.evidence.tpm.registration import (
    UNSAFE_EK_WARNING,
    EndorsementPolicy,
    activation_matches,
    challenge_for,
    check_attestation_key,
    judge_endorsement,
)
from floodlight_trust.evidence.tpm.structures import parse_public


def _roots(state: Path) -> list:
    return [c for p in swtpm.manufacturer_certificates(state) for c in read_certificates(p.read_bytes(), p.name)]


def test_ek_trusted_by_its_certificate(running_swtpm: swtpm.Swtpm, swtpm_state: Path) -> None:
    e = Tpm2ToolsTpm(running_swtpm.tcti).endorsement()
    ek = parse_public(e.ek_public)
    verdict = judge_endorsement(ek, e.ek_certificate, EndorsementPolicy(_roots(swtpm_state)), at=datetime.now(UTC))
    assert verdict.ok and verdict.how == "certificate", verdict.reasons


def test_ek_certificate_from_an_unknown_manufacturer_is_refused(running_swtpm: swtpm.Swtpm, testdata: Path) -> None:
    e = Tpm2ToolsTpm(running_swtpm.tcti).endorsement()
    ek = parse_public(e.ek_public)
    stm = [
        c
        for p in sorted((testdata / "tpm/ek-certs/stm").glob("*.pem"))
        for c in read_certificates(p.read_bytes(), p.name)
    ]
    verdict = judge_endorsement(ek, e.ek_certificate, EndorsementPolicy(stm), at=datetime.now(UTC))
    assert not verdict.ok and "no chain" in verdict.reasons[0]
    # the operator may vouch for this EK by pinning its public key instead
    pinned = judge_endorsement(
        ek, e.ek_certificate, EndorsementPolicy(stm, {verdict.ek_spki_sha256}), at=datetime.now(UTC)
    )
    assert pinned.ok and pinned.how == "pinned"


def test_ek_without_certificate_only_by_pin_or_the_unsafe_setting(running_swtpm: swtpm.Swtpm) -> None:
    ek = parse_public(Tpm2ToolsTpm(running_swtpm.tcti).endorsement().ek_public)
    refused = judge_endorsement(ek, None, EndorsementPolicy(), at=datetime.now(UTC))
    assert not refused.ok and "no certificate" in refused.reasons[0] and "unsafe" in refused.reasons[0]
    unsafe = judge_endorsement(
        ek, None, EndorsementPolicy(unsafe_accept_ek_without_certificate=True), at=datetime.now(UTC)
    )
    assert unsafe.ok and unsafe.how == "unsafe" and UNSAFE_EK_WARNING in unsafe.notes
    pinned = judge_endorsement(
        ek, None, EndorsementPolicy(pinned_ek_spki_sha256={refused.ek_spki_sha256.upper()}), at=datetime.now(UTC)
    )
    assert pinned.ok and pinned.how == "pinned" and not pinned.notes


def test_the_ak_must_be_a_restricted_signing_key_and_the_ek_is_not_one(running_swtpm: swtpm.Swtpm) -> None:
    tpm = Tpm2ToolsTpm(running_swtpm.tcti)
    assert check_attestation_key(parse_public(tpm.attestation_key())) == []
    problems = check_attestation_key(parse_public(tpm.endorsement().ek_public))
    assert "the AK lacks sign" in problems and "the AK is also a decryption key" in problems


def test_credential_activation_proves_the_ak_is_in_the_ek_s_tpm(
    running_swtpm: swtpm.Swtpm, other_swtpm_state: Path
) -> None:
    tpm = Tpm2ToolsTpm(running_swtpm.tcti)
    ek = parse_public(tpm.endorsement().ek_public)
    ak = parse_public(tpm.attestation_key())
    challenge = challenge_for(ek, ak)
    assert "hidden" in repr(challenge) and challenge.secret.hex() not in repr(challenge)
    assert activation_matches(challenge, tpm.activate_credential(challenge.credential.to_tools_format()))
    # a host claiming another TPM's AK beside its own EK: its TPM cannot activate the credential
    with swtpm.Swtpm(other_swtpm_state) as other_sim:
        foreign_ak = parse_public(Tpm2ToolsTpm(other_sim.tcti).attestation_key())
    foreign = challenge_for(ek, foreign_ak)
    with pytest.raises(ServiceError):
        tpm.activate_credential(foreign.credential.to_tools_format())
