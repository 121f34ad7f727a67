"""DCAP verification against the real evidence in tests/data (PROVENANCE.md outcomes)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest

from floodlight_trust.claims import EvidenceType, TcbStatus
from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.clock import parse_time
from floodlight_trust.errors import ParseError, VerificationError
from floodlight_trust.evidence import dcap
from floodlight_trust.evidence.collateral import Collateral, collateral_from_json, collateral_to_json

PHALA_AT = parse_time("2025-06-20T00:00:00Z")
MC_AT = parse_time("2023-07-12T20:48:25Z")


@pytest.fixture(scope="module")
def intel() -> dcap.TrustAnchor:
    return dcap.TrustAnchor.intel()


@pytest.fixture(scope="module")
def phala(testdata: Path) -> tuple[bytes, Collateral]:
    d = testdata / "sgx-dcap" / "phala"
    return (d / "sgx_quote").read_bytes(), load_collateral(d / "sgx_quote_collateral.json")


@pytest.fixture(scope="module")
def mobilecoin(testdata: Path) -> tuple[bytes, Collateral]:
    d = testdata / "sgx-dcap" / "mobilecoin-attestation"
    return (d / "hw_quote.dat").read_bytes(), load_collateral(d)


def test_intel_anchor_is_pinned(intel: dcap.TrustAnchor, testdata: Path) -> None:
    assert intel.fingerprint == dcap.INTEL_ROOT_SHA256
    assert not intel.simulated
    assert (
        intel.certificate.public_bytes(dcap.Encoding.DER)
        == (testdata / "sgx-dcap/phala/TrustedRootCA.der").read_bytes()
    )


@pytest.mark.parametrize("at", ["2025-06-19T10:56:11Z", "2025-06-20T00:00:00Z", "2025-07-19T10:01:18Z"])
def test_phala_valid_inside_window(phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor, at: str) -> None:
    quote, collateral = phala
    result = dcap.verify_quote(quote, collateral, intel, at=parse_time(at))
    c = result.claims
    assert c.evidence_type is EvidenceType.DCAP
    assert c.tcb_status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert c.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert c.qe_identity_status is TcbStatus.UP_TO_DATE
    assert c.mrenclave == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert not c.debug and not c.simulated
    assert c.platform.fmspc == "00a067110000" and c.platform.pce_id == "0000"
    assert c.platform.pck_certificate_sha256 and len(c.platform.pck_certificate_sha256) == 64
    assert c.collateral_issued_at == parse_time("2025-06-19T10:56:11Z")
    assert result.pck.pce_svn == 13
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("2025-06-19T10:56:10Z", "TCB info is not yet valid"),
        ("2025-06-01T00:00:00Z", "not yet valid"),
        ("2025-07-19T10:01:19Z", "QE identity expired at 2025-07-19T10:01:18Z"),
        ("2025-09-01T00:00:00Z", "expired"),
    ],
)
def test_phala_outside_window_collateral_expired(
    phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor, at: str, reason: str
) -> None:
    quote, collateral = phala
    dcap.verify_quote(quote, collateral, intel, at=PHALA_AT)  # cached as verified...
    with pytest.raises(dcap.CollateralExpired, match=reason):  # ...but the window still applies
        dcap.verify_quote(quote, collateral, intel, at=parse_time(at))


def test_mobilecoin_strict_reports_expired_processor_crl(
    mobilecoin: tuple[bytes, Collateral], intel: dcap.TrustAnchor
) -> None:
    quote, collateral = mobilecoin
    with pytest.raises(dcap.CollateralExpired) as info:
        dcap.verify_quote(quote, collateral, intel, at=MC_AT)
    assert "PCK CRL (Intel SGX PCK Processor CA) expired at 2023-05-21T22:00:36Z" in info.value.message
    assert info.value.exit_code == 1


def test_mobilecoin_lenient_status_with_crl_warning(
    mobilecoin: tuple[bytes, Collateral], intel: dcap.TrustAnchor
) -> None:
    quote, collateral = mobilecoin
    r = dcap.verify_quote(quote, collateral, intel, at=MC_AT, unsafe_allow_expired_crls=True)
    assert r.claims.tcb_status is TcbStatus.SW_HARDENING_NEEDED
    assert r.claims.advisory_ids == ("INTEL-SA-00334", "INTEL-SA-00615")
    assert r.claims.qe_identity_status is TcbStatus.UP_TO_DATE
    assert r.claims.mrenclave == "840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4"
    assert r.claims.platform.fmspc == "00906ed50000"
    assert len(r.warnings) == 1 and "PCK CRL" in r.warnings[0] and "expired" in r.warnings[0]


def test_mobilecoin_sgx_debug_quote_out_of_date(
    testdata: Path, mobilecoin: tuple[bytes, Collateral], intel: dcap.TrustAnchor
) -> None:
    quote = (testdata / "sgx-dcap/mobilecoin-sgx/hw_quote.dat").read_bytes()
    r = dcap.verify_quote(quote, mobilecoin[1], intel, at=MC_AT, unsafe_allow_expired_crls=True)
    assert r.claims.debug is True
    assert r.claims.tcb_status is TcbStatus.OUT_OF_DATE
    assert r.claims.qe_identity_status is TcbStatus.OUT_OF_DATE


def test_single_byte_flip_in_header_or_report_body_fails(
    phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor
) -> None:
    quote, collateral = phala
    dcap.verify_quote(quote, collateral, intel, at=PHALA_AT)
    accepted = []
    for i in range(432):
        bad = bytearray(quote)
        bad[i] ^= 0x01
        try:
            dcap.verify_quote(bytes(bad), collateral, intel, at=PHALA_AT)
        except (VerificationError, ParseError):
            continue
        accepted.append(i)
    assert accepted == []


@pytest.mark.parametrize(
    ("offset", "error"),
    [
        (436 + 10, dcap.QuoteSignatureError),  # quote signature
        (436 + 64 + 5, dcap.QeReportDataMismatch),  # attestation key (QE report no longer binds it)
        (436 + 128 + 64, dcap.QeReportSignatureError),  # QE report body
        (436 + 128 + 384 + 3, dcap.QeReportSignatureError),  # QE report signature
        (436 + 128 + 384 + 64 + 2 + 1, dcap.QeReportDataMismatch),  # QE authentication data
    ],
)
def test_tampered_signature_data_names_the_check(
    phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor, offset: int, error: type[Exception]
) -> None:
    quote, collateral = phala
    bad = bytearray(quote)
    bad[offset] ^= 0x01
    with pytest.raises(error):
        dcap.verify_quote(bytes(bad), collateral, intel, at=PHALA_AT)


def test_tampered_collateral_signatures(phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor) -> None:
    quote, collateral = phala
    tcb = collateral.tcb_info.replace(b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18')
    assert tcb != collateral.tcb_info
    with pytest.raises(dcap.CollateralSignatureError, match="TCB info signature"):
        dcap.verify_quote(quote, dataclasses.replace(collateral, tcb_info=tcb), intel, at=PHALA_AT)
    qe = collateral.qe_identity.replace(b'"isvprodid":1', b'"isvprodid":2')
    with pytest.raises(dcap.CollateralSignatureError, match="QE identity signature"):
        dcap.verify_quote(quote, dataclasses.replace(collateral, qe_identity=qe), intel, at=PHALA_AT)


def test_crl_from_wrong_issuer(phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor) -> None:
    quote, collateral = phala
    swapped = dataclasses.replace(collateral, pck_crl=collateral.root_ca_crl)
    with pytest.raises(dcap.CrlIssuerError, match=r"PCK CRL .* is issued by .*Intel SGX Root CA"):
        dcap.verify_quote(quote, swapped, intel, at=PHALA_AT)


def test_chain_to_another_root_is_refused(phala: tuple[bytes, Collateral], tmp_path: Path) -> None:
    from floodlight_trust.sgxsim import SimulatedPlatform

    other = SimulatedPlatform.create(tmp_path / "sim").anchor()
    quote, collateral = phala
    with pytest.raises(dcap.CertificateChainError, match=r"not issued by|no certificate issued by"):
        dcap.verify_quote(quote, collateral, other, at=PHALA_AT)


def test_epid_quote_is_not_dcap(testdata: Path, phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor) -> None:
    import base64

    q = base64.b64decode((testdata / "sgx-epid/mobilecoin/core_to_ias.txt").read_text())
    with pytest.raises(dcap.UnsupportedEvidence, match="Intel Attestation Service"):
        dcap.verify_quote(q, phala[1], intel, at=PHALA_AT)


def test_collateral_json_round_trip(phala: tuple[bytes, Collateral], testdata: Path) -> None:
    _, collateral = phala
    as_json = collateral_to_json(collateral)
    original = json.loads((testdata / "sgx-dcap/phala/sgx_quote_collateral.json").read_text())
    for key, value in as_json.items():
        assert value == original[key]
    assert collateral_from_json(json.dumps(as_json)) == collateral


def test_collateral_directory_slices_exact_signed_json(mobilecoin: tuple[bytes, Collateral], testdata: Path) -> None:
    _, c = mobilecoin
    text = (testdata / "sgx-dcap/mobilecoin-attestation/fmspc_00906ED50000_2023_07_12.json").read_bytes()
    assert text.startswith(b'{"tcbInfo":' + c.tcb_info + b',"signature":"')
    assert c.tcb_info_signature.hex() in text.decode()


def test_bad_collateral_file_is_located(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text('{"tcb_info": "x"}')
    with pytest.raises(ParseError) as info:
        load_collateral(f)
    assert str(f) in str(info.value) and "lacks" in info.value.message


def test_times_are_aware(phala: tuple[bytes, Collateral], intel: dcap.TrustAnchor) -> None:
    r = dcap.verify_quote(phala[0], phala[1], intel, at=PHALA_AT)
    assert isinstance(r.claims.collateral_issued_at, datetime) and r.claims.collateral_issued_at.tzinfo


def test_one_tcb_status_parser_for_collateral_and_claims() -> None:
    """Intel's names, spelled exactly, parse to TcbStatus wherever they come from; anything else is
    a ParseError naming the document (TCB info, QE identity) it came from."""
    from floodlight_trust.claims import TcbStatus
    from floodlight_trust.errors import ParseError

    assert [TcbStatus.parse(s.value) for s in TcbStatus] == list(TcbStatus)
    with pytest.raises(ParseError, match=r"^TCB info: unknown TCB status 'upToDate'$") as e:
        TcbStatus.parse("upToDate", what="TCB info")
    assert e.value.hint is not None and "OutOfDateConfigurationNeeded" in e.value.hint
