"""The real measurement lists in tests/data/ima and the outcomes PROVENANCE.md states."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust.evidence.ima import (
    FindingKind,
    appraise_measurement_list,
    records_from_binary,
    serialize_ascii,
    template_hash,
)

SHA1_PCR10 = "9be6bac02bf18d09d17e726c2df00bca4e8831ea"
SHA256_PCR10 = "7fac48c81837d6d29046008aef0cdad8c2745cc98c3340cbba9bfdf39b4124b8"


def kvt_values(testdata: Path) -> list[str]:
    lines = (testdata / "ima/ibmtss/imakvtpcr10.txt").read_text().splitlines()
    return ["".join(line.split(":", 1)[1].split()) for line in lines if line.strip()]


@pytest.mark.parametrize("log", ["sha1.log", "sha256.log"])
def test_ibmtss_binary_replays_to_the_quoted_pcr_in_both_banks(testdata: Path, log: str) -> None:
    data = (testdata / "ima/ibmtss" / log).read_bytes()
    a = appraise_measurement_list(data, banks=("sha1", "sha256"), source=log)
    assert a.ok
    assert a.entry_count == 362 and len(a.claims) == 362
    assert a.findings == ()
    assert set(a.claims.templates) == {"ima-sig"}
    assert dict(a.claims.pcr_values) == {"sha1": SHA1_PCR10, "sha256": SHA256_PCR10}
    assert kvt_values(testdata)[:2] == [SHA1_PCR10, SHA256_PCR10]
    assert a.claims.paths[0] == "boot_aggregate"
    assert a.claims.boot_aggregate == a.claims.digests[0]
    assert a.state.byte_length == len(data)


@pytest.mark.parametrize("bank", ["sha1", "sha256"])
def test_ibmtss_as_ascii_list_gives_the_same_replay(testdata: Path, bank: str) -> None:
    records = records_from_binary((testdata / "ima/ibmtss/sha1.log").read_bytes(), 20)
    text = serialize_ascii(records, bank=bank)
    assert text.startswith(b"10 ") and text.count(b"\n") == 362
    a = appraise_measurement_list(text, expected_pcrs={"sha1": SHA1_PCR10, "sha256": SHA256_PCR10})
    assert a.ok and a.entry_count == 362
    assert a.findings == ()


def test_ibmtss_expected_pcr_mismatch_is_a_finding_and_not_ok(testdata: Path) -> None:
    data = (testdata / "ima/ibmtss/sha256.log").read_bytes()
    a = appraise_measurement_list(data, expected_pcrs={"sha256": "00" * 32})
    assert not a.ok
    (f,) = a.findings
    assert f.kind is FindingKind.PCR_MISMATCH
    assert SHA256_PCR10 in f.message


def test_imatest_mixed_templates_16_match_and_one_violation(testdata: Path) -> None:
    data = (testdata / "ima/ibmtss/imatest.log").read_bytes()
    a = appraise_measurement_list(data, source="imatest.log")
    assert a.ok and a.entry_count == 17
    assert {"ima", "ima-ng", "ima-sig", "ima-sigv2", "ima-ngv2", "ima-modsig", "ima-buf", "evm-sig"} <= set(
        a.claims.templates
    )
    assert "d-ng|n-ng" not in a.claims.templates and "n-ng|d-ng" in a.claims.templates  # custom descriptors
    kinds = [f.kind for f in a.findings]
    assert kinds == [FindingKind.VIOLATION]
    (index,) = a.claims.violations
    assert a.claims.templates[index] == "ima"
    assert a.findings[0].location.index == index and a.findings[0].location.file == "imatest.log"
    assert a.claims.paths[13] == ".builtin_trusted_keys"  # ima-buf


def test_imatest_violation_extends_all_ff(testdata: Path) -> None:
    records = records_from_binary((testdata / "ima/ibmtss/imatest.log").read_bytes(), 20)
    assert [r.violation for r in records].count(True) == 1
    # The same list without the violation flag would replay differently: the 0xFF extension matters.
    honest = appraise_measurement_list((testdata / "ima/ibmtss/imatest.log").read_bytes())
    forged = [r._replace(violation=False) for r in records]
    text = serialize_ascii(forged)
    other = appraise_measurement_list(text)
    assert other.ok and other.claims.pcr_values["sha1"] != honest.claims.pcr_values["sha1"]


@pytest.mark.parametrize(
    ("name", "entries", "prefix"),
    [("sml-ima-sha1", 12, "719de8e5"), ("sml-ima-ng-sha1", 6, "1d8d532d"), ("sml-ima-sig-sha256", 9, None)],
)
def test_tpm2tss_excerpts_match_and_report_partial_trailing_record(
    testdata: Path, name: str, entries: int, prefix: str | None
) -> None:
    data = (testdata / "ima/tpm2-tss/decoded" / f"{name}.bin").read_bytes()
    a = appraise_measurement_list(data, source=f"{name}.bin")
    assert a.ok and a.entry_count == entries
    (f,) = a.findings
    assert f.kind is FindingKind.PARTIAL_RECORD
    assert f.location.index == entries and f.location.offset == a.state.byte_length
    assert "record header needs" in f.message
    assert a.state.byte_length < len(data)
    if prefix:
        first = records_from_binary(data, 20)[0]
        assert first.fields[-1].rstrip(b"\0") == b"boot_aggregate"
        assert template_hash(first, "sha1").hex().startswith(prefix)


def test_tpm2tss_invalidated_end_in_violation_records(testdata: Path) -> None:
    base = testdata / "ima/tpm2-tss/decoded"
    sig = appraise_measurement_list((base / "sml-ima-sig-sha256-invalidated.bin").read_bytes())
    assert sig.ok and sig.entry_count == 2 and sig.claims.violations == frozenset({1})
    assert [f.kind for f in sig.findings] == [FindingKind.VIOLATION]
    assert sig.claims.paths[1] == "/init" and sig.claims.digest_algorithms[1] == "sha256"
    old = appraise_measurement_list((base / "sml-ima-sha1-invalidated.bin").read_bytes())
    assert old.entry_count == 1 and old.claims.violations == frozenset({0})
    # The ima-ng violation record is itself cut short by one byte: a partial record, nothing appraised.
    ng = appraise_measurement_list((base / "sml-ima-ng-sha1-invalidated.bin").read_bytes())
    assert ng.entry_count == 0
    assert [f.kind for f in ng.findings] == [FindingKind.PARTIAL_RECORD]
    assert "template data needs 49 bytes, 48 remain" in ng.findings[0].message
