"""Against a real TPM 2.0 implementation: swtpm (libtpms) started by the tests on a temporary state
directory, driven by tpm2-tools. Quotes, EKs and AKs here are made by that TPM, never by hand."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.errors import ParseError, ServiceError
from floodlight_trust.evidence.ima import ImaState, appraise_measurement_list, make_entry, serialize_ascii
from floodlight_trust.evidence.tpm.credential import make_credential
from floodlight_trust.evidence.tpm.ek import read_certificate, read_certificates, verify_ek_certificate
from floodlight_trust.evidence.tpm.keys import load_key
from floodlight_trust.evidence.tpm.quote import BootChange, TpmCheck, compare_rounds, verify_quote
from floodlight_trust.evidence.tpm.structures import (
    TpmPublic,
    parse_attest,
    parse_pcr_file,
    parse_public,
    parse_signature,
)
from tests.support.tpm import SimulatedKernel

SELECTION = {"sha1": (10,), "sha256": (0, 7, 10)}
NONCE = bytes(range(32))


@pytest.fixture()
def host(running_swtpm: swtpm.Swtpm) -> Iterator[tuple[Tpm2ToolsTpm, SimulatedKernel]]:
    tpm = Tpm2ToolsTpm(running_swtpm.tcti)
    kernel = SimulatedKernel(tpm)
    kernel.boot()
    yield tpm, kernel


def _quote(tpm: Tpm2ToolsTpm, nonce: bytes = NONCE):  # type: ignore[no-untyped-def]
    q = tpm.quote(nonce, SELECTION)
    attest = parse_attest(q.attest)
    return attest, parse_signature(q.signature), parse_pcr_file(q.pcrs, attest.quote.selections), q


def test_a_good_quote_over_the_ima_list_is_accepted(host: tuple[Tpm2ToolsTpm, SimulatedKernel]) -> None:
    tpm, kernel = host
    for i in range(5):
        kernel.measure(f"/usr/bin/tool{i}", b"binary %d" % i)
    ak = load_key(tpm.attestation_key())
    assert ak.tpm_public is not None and ak.tpm_public.has(TpmPublic.RESTRICTED)
    attest, sig, pcrs, _ = _quote(tpm)
    ima = appraise_measurement_list(kernel.ascii_list(), banks=("sha1", "sha256"))
    result = verify_quote(attest, sig, ak, pcrs, NONCE, ima=ima)
    assert result.ok, result.findings
    assert result.ima_bank == "sha256"
    assert pcrs["sha256"][10].hex() == ima.state.pcr_values["sha256"]
    assert pcrs["sha1"][10].hex() == ima.state.pcr_values["sha1"]


def test_every_single_byte_change_of_a_swtpm_quote_and_signature_is_refused(
    host: tuple[Tpm2ToolsTpm, SimulatedKernel],
) -> None:
    tpm, _ = host
    ak = load_key(tpm.attestation_key())
    attest, sig, pcrs, raw = _quote(tpm)
    assert verify_quote(attest, sig, ak, pcrs, NONCE).ok
    refused = 0
    for blob, is_attest in ((raw.attest, True), (raw.signature, False)):
        for i in range(len(blob)):
            changed = bytearray(blob)
            changed[i] ^= 0x80
            try:
                a = parse_attest(bytes(changed)) if is_attest else attest
                s = sig if is_attest else parse_signature(bytes(changed))
            except ParseError:
                refused += 1
                continue
            assert not verify_quote(a, s, ak, pcrs, NONCE).ok, (is_attest, i)
            refused += 1
    assert refused == len(raw.attest) + len(raw.signature)


def test_a_wrong_nonce_is_refused(host: tuple[Tpm2ToolsTpm, SimulatedKernel]) -> None:
    tpm, _ = host
    ak = load_key(tpm.attestation_key())
    attest, sig, pcrs, _ = _quote(tpm, b"\x01" * 32)
    result = verify_quote(attest, sig, ak, pcrs, NONCE)
    assert [f.code for f in result.denials()] == [TpmCheck.NONCE]
    empty = _quote(tpm, b"")
    assert empty[0].extra_data == b""
    assert verify_quote(empty[0], empty[1], ak, empty[2], b"").ok


def test_a_rewritten_ima_list_is_exposed_by_pcr_10_and_the_first_differing_entry_named(
    host: tuple[Tpm2ToolsTpm, SimulatedKernel],
) -> None:
    tpm, kernel = host
    ak = load_key(tpm.attestation_key())
    for i in range(3):
        kernel.measure(f"/usr/bin/known{i}", b"known %d" % i)
    # round 1: verified, the VM keeps the incremental IMA state
    attest, sig, pcrs, _ = _quote(tpm)
    first = appraise_measurement_list(kernel.ascii_list(), banks=("sha256",))
    assert verify_quote(attest, sig, ak, pcrs, NONCE, ima=first).ok
    round_one = attest.clock_info
    # an unknown binary runs; root rewrites the list so that its entry shows a known file instead
    hidden = kernel.measure("/tmp/.hidden/miner", b"unknown binary")
    kernel.measure("/usr/bin/known9", b"known 9")
    forged = list(kernel.records)
    forged[hidden] = make_entry("/usr/bin/known0", hashlib.sha256(b"known 0").digest())
    forged_list = serialize_ascii(forged)
    attest, sig, pcrs, _ = _quote(tpm)
    second = appraise_measurement_list(forged_list, state=first.state, banks=("sha256",))
    assert second.ok  # the IMA list on its own is consistent: every template hash recomputes
    result = verify_quote(attest, sig, ak, pcrs, NONCE, ima=second, previous=round_one)
    denials = result.denials()
    assert [f.code for f in denials] == [TpmCheck.IMA_PCR]
    ima_denial = denials[0]
    assert ima_denial.evidence["first_differing_entry"] == hidden
    assert f"first differing entry: entry {hidden}" in ima_denial.message
    # the true list still verifies, incrementally from round 1's state
    honest = appraise_measurement_list(kernel.ascii_list(), state=first.state, banks=("sha256",))
    assert verify_quote(attest, sig, ak, pcrs, NONCE, ima=honest).ok


def test_the_whole_list_and_the_incremental_rounds_agree(host: tuple[Tpm2ToolsTpm, SimulatedKernel]) -> None:
    tpm, kernel = host
    ak = load_key(tpm.attestation_key())
    state: ImaState | None = None
    previous = None
    for round_no in range(3):
        kernel.measure(f"/usr/bin/round{round_no}", b"round %d" % round_no)
        attest, sig, pcrs, _ = _quote(tpm)
        step = appraise_measurement_list(kernel.ascii_list(), state=state, banks=("sha256",))
        whole = appraise_measurement_list(kernel.ascii_list(), banks=("sha256",))
        for ima in (step, whole):
            result = verify_quote(attest, sig, ak, pcrs, NONCE, ima=ima, previous=previous)
            assert result.ok, result.findings
        assert result.round.change is (BootChange.FIRST if previous is None else BootChange.SAME_BOOT)
        state, previous = step.state, attest.clock_info


def test_a_reboot_between_rounds_is_detected_and_named(swtpm_state: Path) -> None:
    with swtpm.Swtpm(swtpm_state) as sim:
        tpm = Tpm2ToolsTpm(sim.tcti)
        ak = load_key(tpm.attestation_key())
        before, *_ = _quote(tpm)
        sim.restart()  # power cycle: TPM2_Startup(CLEAR)
        tpm = Tpm2ToolsTpm(sim.tcti)
        attest, sig, pcrs, _ = _quote(tpm)
    assert attest.clock_info.reset_count == before.clock_info.reset_count + 1
    result = verify_quote(attest, sig, ak, pcrs, NONCE, previous=before.clock_info)
    assert result.ok and result.round.rebooted
    reboot = [f for f in result.findings if f.code is TpmCheck.REBOOT]
    assert reboot and "rebooted" in reboot[0].message and not reboot[0].denies
    # replaying the older quote after the newer one: the counters go back
    backwards = compare_rounds(attest.clock_info, before.clock_info)
    assert [f.code for f in backwards.findings] == [TpmCheck.COUNTERS]


def test_make_credential_activate_credential_round_trip(host: tuple[Tpm2ToolsTpm, SimulatedKernel]) -> None:
    tpm, _ = host
    ek = parse_public(tpm.endorsement().ek_public)
    ak = parse_public(tpm.attestation_key())
    secret = bytes(range(100, 132))
    credential = make_credential(ek, secret, ak.name)
    assert tpm.activate_credential(credential.to_tools_format()) == secret
    # bound to another name, the TPM refuses to release it (the outer HMAC covers the name)
    wrong = make_credential(ek, secret, ak.name[:-1] + bytes([ak.name[-1] ^ 1]))
    with pytest.raises(ServiceError):
        tpm.activate_credential(wrong.to_tools_format())


def test_swtpm_ek_certificate_chains_to_its_manufacturer(
    host: tuple[Tpm2ToolsTpm, SimulatedKernel], swtpm_state: Path
) -> None:
    tpm, _ = host
    endorsement = tpm.endorsement()
    assert endorsement.ek_certificate is not None
    roots = [c for p in swtpm.manufacturer_certificates(swtpm_state) for c in read_certificates(p.read_bytes(), p.name)]
    ek = parse_public(endorsement.ek_public)
    result = verify_ek_certificate(
        read_certificate(endorsement.ek_certificate), roots, at=datetime.now(UTC), ek_public=ek
    )
    assert result.ok, result.reasons


def test_an_ak_from_another_tpm_is_refused(host: tuple[Tpm2ToolsTpm, SimulatedKernel], other_swtpm_state: Path) -> None:
    tpm, _ = host
    attest, sig, pcrs, _ = _quote(tpm)
    with swtpm.Swtpm(other_swtpm_state) as other_sim:
        other = Tpm2ToolsTpm(other_sim.tcti)
        other_ak = load_key(other.attestation_key())
        other_ek = parse_public(other.endorsement().ek_public)
        # a credential for this TPM's AK, encrypted to the other TPM's EK: that TPM cannot use it
        mine = parse_public(tpm.attestation_key())
        with pytest.raises(ServiceError):
            other.activate_credential(make_credential(other_ek, b"s" * 16, mine.name).to_tools_format())
    result = verify_quote(attest, sig, other_ak, pcrs, NONCE)
    assert [f.code for f in result.denials()] == [TpmCheck.SIGNATURE]


@pytest.mark.parametrize(
    ("handle", "key", "scheme", "hash_name", "described"),
    [
        (0x81010010, "ecc", "ecdsa", "sha256", "ECC-secp256r1"),
        (0x81010011, "ecc384", "ecdsa", "sha384", "ECC-secp384r1"),
        (0x81010012, "rsa", "rsapss", "sha256", "RSA-2048 e=65537"),
        (0x81010013, "rsa", "rsassa", "sha384", "RSA-2048 e=65537"),
    ],
)
def test_every_signature_scheme_and_hash_of_a_real_tpm_verifies(
    running_swtpm: swtpm.Swtpm, handle: int, key: str, scheme: str, hash_name: str, described: str
) -> None:
    tpm = Tpm2ToolsTpm(running_swtpm.tcti, ak_handle=handle, ak_key=key, ak_scheme=scheme, ak_hash=hash_name)
    ak = load_key(tpm.attestation_key())
    assert ak.describe() == described
    attest, sig, pcrs, raw = _quote(tpm)
    assert (sig.scheme.name.lower(), sig.hash) == (scheme, hash_name)
    assert verify_quote(attest, sig, ak, pcrs, NONCE).ok
    # the PCR digest uses the signature's hash
    assert len(attest.quote.pcr_digest) == {"sha256": 32, "sha384": 48}[hash_name]
    flipped = bytearray(raw.signature)
    flipped[-1] ^= 1
    assert [f.code for f in verify_quote(attest, parse_signature(bytes(flipped)), ak, pcrs, NONCE).denials()] == [
        TpmCheck.SIGNATURE
    ]
