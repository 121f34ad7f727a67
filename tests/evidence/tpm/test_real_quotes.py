"""TPM 2.0 quotes from real TPMs and simulators (tests/data/tpm, see its PROVENANCE.md): every field
parses to the value the provenance states, every good quote verifies, every tampered one is refused
for the stated reason."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.tpm.keys import load_key
from floodlight_trust.evidence.tpm.quote import TpmCheck, verify_quote
from floodlight_trust.evidence.tpm.structures import (
    parse_attest,
    parse_pcr_file,
    parse_public,
    parse_signature,
    pcrs_from_json,
)

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def tpm(testdata: Path) -> Path:
    return testdata / "tpm"


@pytest.fixture(scope="module")
def expected(tpm: Path) -> dict[str, Any]:
    return json.loads((tpm / "expected.json").read_text())


def _pcrs(path: Path) -> Any:
    if path.suffix == ".json":
        return pcrs_from_json(json.loads(path.read_text()))
    return parse_pcr_file(path.read_bytes())


def _check_fields(attest: Any, e: dict[str, Any]) -> None:
    assert f"{attest.magic:08x}" == e["magic"]
    assert attest.type.name == e["type_name"]
    assert attest.qualified_signer.hex() == e["qualifiedSigner"]
    assert attest.extra_data.hex() == e["extraData"]
    assert attest.clock_info.clock == e["clock"]
    assert attest.clock_info.reset_count == e["resetCount"]
    assert attest.clock_info.restart_count == e["restartCount"]
    assert attest.clock_info.safe == bool(e["safe"])
    assert f"{attest.firmware_version:016x}" == e["firmwareVersion"]
    assert [s.to_json() for s in attest.quote.selections] == e["pcrSelect"]
    assert attest.quote.pcr_digest.hex() == e["pcrDigest"]
    if "attest_len" in e:
        assert len(attest.raw) == e["attest_len"]


GCE = [
    (case, bank) for case in ("gce-cos-85-nonce9009", "gce-cos-85-no-nonce") for bank in ("sha1", "sha256", "sha384")
]


@pytest.mark.parametrize(("case", "bank"), GCE)
def test_gce_vtpm_quotes_parse_and_verify(tpm: Path, expected: dict[str, Any], case: str, bank: str) -> None:
    folder = tpm / "go-tpm-tools" / case
    e = expected[f"go-tpm-tools/{case}"]
    attest = parse_attest((folder / f"quote_{bank}.msg").read_bytes())
    _check_fields(attest, e[f"quote_{bank}"])
    sig = parse_signature((folder / f"quote_{bank}.sig").read_bytes())
    assert (sig.scheme.name.lower(), sig.hash) == ("rsassa", "sha256")
    ak = load_key((folder / "ak.tpmt_public").read_bytes())
    assert ak.describe() == e["ak"]
    assert ak.name is not None and ak.name.hex() == e["ak_name"]
    assert ak.tpm_public is not None and f"{ak.tpm_public.object_attributes:08x}" == e["ak_attributes"]
    result = verify_quote(attest, sig, ak, _pcrs(folder / f"pcrs_{bank}.json"), bytes.fromhex(e["nonce_hex"]))
    assert result.ok, result.findings
    assert result.findings == ()


def test_gce_ak_certificate_carries_the_same_key(tpm: Path) -> None:
    folder = tpm / "go-tpm-tools" / "gce-cos-85-nonce9009"
    from_cert = load_key((folder / "ak_cert.der").read_bytes())
    from_tpm = load_key((folder / "ak.tpmt_public").read_bytes())
    assert from_cert.spki_sha256 == from_tpm.spki_sha256 != ""
    assert from_cert.certificate is not None and from_cert.name is None


def test_keylime_simulator_quote_with_tpm2_tools_pcr_file(tpm: Path, expected: dict[str, Any]) -> None:
    folder = tpm / "keylime" / "test-data-files"
    e = expected["keylime/test-data-files"]
    attest = parse_attest((folder / "quote.out").read_bytes())
    _check_fields(attest, e)
    pcrs = parse_pcr_file((folder / "quotepcr.out").read_bytes())
    assert {b: {str(p): v.hex() for p, v in vals.items()} for b, vals in pcrs.items()} == json.loads(e["pcrs"])
    sig = parse_signature((folder / "quotesig.out").read_bytes())
    ak_tpm = load_key((folder / "ak.pub").read_bytes())
    ak_pem = load_key((folder / "akpub.pem").read_bytes())
    assert ak_tpm.name == (folder / "ak.name").read_bytes()
    assert ak_tpm.spki_sha256 == ak_pem.spki_sha256 == e["ak_spki_sha256"]
    for ak in (ak_tpm, ak_pem):
        assert verify_quote(attest, sig, ak, pcrs, bytes.fromhex(e["extraData"])).ok
    # the repository's own negative: without the qualifying data the nonce check fails
    assert verify_quote(attest, sig, ak_pem, pcrs, b"").failed(TpmCheck.NONCE)


@pytest.mark.parametrize("n", range(6))
def test_keylime_emulator_quotes(tpm: Path, expected: dict[str, Any], n: int) -> None:
    folder = tpm / "keylime" / "emulator"
    e = expected["keylime/emulator"][f"quote{n}"]
    attest = parse_attest((folder / f"quote{n}" / "quote.msg").read_bytes())
    _check_fields(attest, e)
    pcrs = parse_pcr_file((folder / f"quote{n}" / "quote.pcrs").read_bytes())
    sig = parse_signature((folder / f"quote{n}" / "quote.sig").read_bytes())
    ak = load_key((folder / "ak.pem").read_bytes())
    result = verify_quote(attest, sig, ak, pcrs, bytes.fromhex(e["expected_nonce_hex"]))
    assert result.ok, result.findings


def test_keylime_swtpm_checkquote(tpm: Path, expected: dict[str, Any]) -> None:
    folder = tpm / "keylime" / "tpm_util_test-checkquote"
    e = expected["keylime/tpm_util_test-checkquote"]
    attest = parse_attest((folder / "quote.msg").read_bytes())
    _check_fields(attest, e)
    nonce = (folder / "nonce.txt").read_bytes()
    assert nonce.hex() == e["expected_nonce_hex"]
    sig = parse_signature((folder / "quote.sig").read_bytes())
    ak = load_key((folder / "akpub.pem").read_bytes())
    assert ak.spki_sha256 == e["ak_spki_sha256"]
    pcrs = parse_pcr_file((folder / "quote.pcrs").read_bytes())
    assert verify_quote(attest, sig, ak, pcrs, nonce).ok
    # the repository's negatives: nonce[0] = 'a'; PCR blob byte 5 flipped (its selection: parse error or mismatch)
    assert verify_quote(attest, sig, ak, pcrs, b"a" + nonce[1:]).failed(TpmCheck.NONCE)
    blob = bytearray((folder / "quote.pcrs").read_bytes())
    blob[5] ^= 1
    with pytest.raises(ParseError):
        parse_pcr_file(bytes(blob))


def test_fraunhofer_cmc_quote_with_ak_certificate(tpm: Path, expected: dict[str, Any]) -> None:
    folder = tpm / "fraunhofer-cmc"
    e = expected["fraunhofer-cmc"]
    values = json.loads((folder / "values.json").read_text())
    attest = parse_attest((folder / "quote.msg").read_bytes())
    _check_fields(attest, e)
    ak = load_key((folder / "ak_cert.pem").read_bytes())
    assert ak.spki_sha256 == e["ak_spki_sha256"]
    pcrs = pcrs_from_json({"sha256": values["pcr_summary_sha256"]})
    nonce = bytes.fromhex(values["nonce_hex"])
    good = parse_signature((folder / "quote.sig").read_bytes())
    assert verify_quote(attest, good, ak, pcrs, nonce).ok
    bad = verify_quote(attest, parse_signature((folder / "quote_invalid.sig").read_bytes()), ak, pcrs, nonce)
    assert [f.code for f in bad.denials()] == [TpmCheck.SIGNATURE]
    wrong_nonce = verify_quote(attest, good, ak, pcrs, bytes.fromhex(values["invalid_nonce_hex"]))
    assert [f.code for f in wrong_nonce.denials()] == [TpmCheck.NONCE]
    wrong_pcrs = verify_quote(attest, good, ak, pcrs_from_json({"sha256": values["invalid_pcr_summary_sha256"]}), nonce)
    assert [f.code for f in wrong_pcrs.denials()] == [TpmCheck.PCR_DIGEST]


def test_trustee_swtpm_quote_over_24_pcrs(tpm: Path, expected: dict[str, Any]) -> None:
    e = expected["trustee-tpm-swtpm"]
    evidence = json.loads((tpm / "trustee-tpm-swtpm" / "tpm_evidence.json").read_text())
    attest = parse_attest((tpm / "trustee-tpm-swtpm" / "quote.msg").read_bytes())
    _check_fields(attest, e)
    assert attest.quote.selections[0].pcrs == tuple(range(24))
    ak = load_key(base64.b64decode(evidence["ak_public"]))
    assert ak.spki_sha256 == e["ak_spki_sha256"]
    pcrs = pcrs_from_json({"sha256": dict(enumerate(evidence["tpm_quote"]["pcrs"]))})
    sig = parse_signature((tpm / "trustee-tpm-swtpm" / "quote.sig").read_bytes())
    assert verify_quote(attest, sig, ak, pcrs, bytes.fromhex(e["extraData"])).ok
    missing = verify_quote(
        attest, sig, ak, {"sha256": {p: v for p, v in pcrs["sha256"].items() if p != 10}}, attest.extra_data
    )
    assert [f.code for f in missing.denials()] == [TpmCheck.PCR_MISSING]


def test_a_wrong_expected_nonce_is_refused_with_the_signature_still_valid(tpm: Path) -> None:
    folder = tpm / "go-tpm-tools" / "gce-cos-85-no-nonce"
    attest = parse_attest((folder / "quote_sha256.msg").read_bytes())
    sig = parse_signature((folder / "quote_sha256.sig").read_bytes())
    ak = load_key((folder / "ak.tpmt_public").read_bytes())
    result = verify_quote(attest, sig, ak, _pcrs(folder / "pcrs_sha256.json"), bytes.fromhex("00010203"))
    assert [f.code for f in result.denials()] == [TpmCheck.NONCE]
    assert "(empty)" in result.denials()[0].message


def test_an_ak_from_another_tpm_is_refused(tpm: Path) -> None:
    folder = tpm / "go-tpm-tools" / "gce-cos-85-nonce9009"
    attest = parse_attest((folder / "quote_sha256.msg").read_bytes())
    sig = parse_signature((folder / "quote_sha256.sig").read_bytes())
    other = load_key((tpm / "keylime" / "test-data-files" / "ak.pub").read_bytes())
    result = verify_quote(attest, sig, other, _pcrs(folder / "pcrs_sha256.json"), bytes.fromhex("9009"))
    assert [f.code for f in result.denials()] == [TpmCheck.SIGNATURE]


# ------------------------------------------------------------------------------------------------
# tampered/: the provenance's list of what a verifier must report

CASES = {
    "gce_cos85_nonce9009_sha256": ("go-tpm-tools/gce-cos-85-nonce9009", "quote_sha256.msg", "quote_sha256.sig",
                                   "ak.tpmt_public", "pcrs_sha256.json", bytes.fromhex("9009")),
    "keylime_swtpm_checkquote": ("keylime/tpm_util_test-checkquote", "quote.msg", "quote.sig", "akpub.pem",
                                 "quote.pcrs", b"Ai5M5SjYjnkyv4P7itH1"),
}  # fmt: skip
# variant -> the checks that must fail (None: a located parse error)
TAMPERED: dict[str, set[TpmCheck] | None] = {
    "extradata_flip.attest": {TpmCheck.SIGNATURE, TpmCheck.NONCE},
    "magic_flip.attest": {TpmCheck.MAGIC, TpmCheck.SIGNATURE},
    "type_changed.attest": None,
    "clock_flip.attest": {TpmCheck.SIGNATURE},
    "pcrdigest_flip.attest": {TpmCheck.SIGNATURE, TpmCheck.PCR_DIGEST},
    "pcr_value_flip.pcrs.json": {TpmCheck.PCR_DIGEST},
    "sig_lastbyte_flip.sig": {TpmCheck.SIGNATURE},
    "truncated.attest": None,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", sorted(TAMPERED))
def test_tampered_evidence_is_refused_for_the_stated_reason(tpm: Path, case: str, variant: str) -> None:
    folder, msg, sig, ak, pcrs, nonce = CASES[case]
    base = tpm / folder
    altered = tpm / "tampered" / case / variant
    parts = {"msg": base / msg, "sig": base / sig, "pcrs": base / pcrs}
    kind = "pcrs" if variant.endswith(".pcrs.json") else "sig" if variant.endswith(".sig") else "msg"
    parts[kind] = altered
    want = TAMPERED[variant]
    if want is None:
        with pytest.raises(ParseError) as info:
            parse_attest(parts["msg"].read_bytes())
        assert info.value.location is not None and info.value.location.offset is not None
        return
    result = verify_quote(
        parse_attest(parts["msg"].read_bytes()),
        parse_signature(parts["sig"].read_bytes()),
        load_key((base / ak).read_bytes()),
        _pcrs(parts["pcrs"]),
        nonce,
    )
    assert {f.code for f in result.denials()} == want


def test_type_changed_names_the_type_at_its_offset(tpm: Path) -> None:
    with pytest.raises(ParseError) as info:
        parse_attest((tpm / "tampered" / "keylime_swtpm_checkquote" / "type_changed.attest").read_bytes())
    assert info.value.location is not None and info.value.location.offset == 4
    assert "TPM_ST_ATTEST_CERTIFY" in str(info.value)


def test_every_single_byte_change_of_a_real_quote_is_refused(tpm: Path) -> None:
    folder = tpm / "go-tpm-tools" / "gce-cos-85-nonce9009"
    raw = (folder / "quote_sha256.msg").read_bytes()
    sig_raw = (folder / "quote_sha256.sig").read_bytes()
    ak = load_key((folder / "ak.tpmt_public").read_bytes())
    pcrs = _pcrs(folder / "pcrs_sha256.json")
    nonce = bytes.fromhex("9009")
    sig = parse_signature(sig_raw)
    assert verify_quote(parse_attest(raw), sig, ak, pcrs, nonce).ok
    for blob, is_attest in ((raw, True), (sig_raw, False)):
        for i in range(len(blob)):
            changed = bytearray(blob)
            changed[i] ^= 0x01
            try:
                a = parse_attest(bytes(changed)) if is_attest else parse_attest(raw)
                s = sig if is_attest else parse_signature(bytes(changed))
            except ParseError:
                continue
            assert not verify_quote(a, s, ak, pcrs, nonce).ok, (is_attest, i)


def test_tpm2b_forms_are_recognised(tpm: Path) -> None:
    folder = tpm / "go-tpm-tools" / "gce-cos-85-nonce9009"
    raw = (folder / "quote_sha256.msg").read_bytes()
    assert parse_attest(len(raw).to_bytes(2, "big") + raw).raw == raw
    tpmt = (folder / "ak.tpmt_public").read_bytes()
    assert parse_public(len(tpmt).to_bytes(2, "big") + tpmt).name == parse_public(tpmt).name
    with pytest.raises(ParseError) as info:
        parse_attest((len(raw) + 1).to_bytes(2, "big") + raw)
    assert info.value.location is not None and info.value.location.offset == 0
