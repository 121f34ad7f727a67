"""The verified-collateral cache returns exactly what a cold verification returns: it is keyed by
the collateral's content, the anchor and the TCB signers the verification time selects."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.evidence import dcap
from floodlight_trust.evidence.sgx_quote import QuoteV3, parse_quote
from floodlight_trust.sgxsim import SimulatedPlatform
from tests.support.attacks import BorrowedQeReport

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cold_cache() -> Iterator[None]:
    dcap.clear_cache()
    yield
    dcap.clear_cache()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("sim"))


def _quote(p: SimulatedPlatform) -> bytes:
    return p.quote(mrenclave=bytes(32), mrsigner=bytes(32), report_data=b"cache test")


def _outcome(quote: bytes, collateral: dcap.Collateral, anchor: dcap.TrustAnchor, at: datetime) -> str:
    try:
        return dcap.verify_quote(quote, collateral, anchor, at=at).claims.tcb_status.value
    except dcap.DcapError as e:
        return f"{type(e).__name__}: {e.message}"


def _cold(quote: bytes, collateral: dcap.Collateral, anchor: dcap.TrustAnchor, at: datetime) -> str:
    dcap.clear_cache()
    return _outcome(quote, collateral, anchor, at)


def _signing_cert(p: SimulatedPlatform, not_before: datetime, not_after: datetime) -> bytes:
    """Another TCB signing certificate, from the same root but with ANOTHER key and a short window."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "SIMULATED SGX TCB Signing (old)")]))
        .issuer_name(p.root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(p.root_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


def test_cached_verdicts_follow_the_signer_in_force_at_the_verification_time(platform: SimulatedPlatform) -> None:
    """Chain: [a signer with another key valid only on day 3, the real signer, root]. On day 3 the
    first is in force and the TCB info signature must fail; on day 1 the real one verifies. The
    cache, filled on day 1, must not answer for day 3 (nor the other way round)."""
    anchor, quote = platform.anchor(), _quote(platform)
    good = platform.collateral(AT)
    extra = _signing_cert(platform, AT + timedelta(days=3), AT + timedelta(days=4))
    collateral = dataclasses.replace(
        good,
        tcb_info_issuer_chain=extra + good.tcb_info_issuer_chain,
        qe_identity_issuer_chain=extra + good.qe_identity_issuer_chain,
    )
    day1, day3 = AT + timedelta(days=1), AT + timedelta(days=3, hours=12)
    cold = {t: _cold(quote, collateral, anchor, t) for t in (day1, day3)}
    assert cold[day1] == "UpToDate"
    assert cold[day3].startswith("CollateralSignatureError: TCB info signature is not valid")
    for order in ((day1, day3, day1, day3), (day3, day1, day3, day1)):  # whichever time fills the cache first
        dcap.clear_cache()
        for t in order:
            assert _outcome(quote, collateral, anchor, t) == cold[t]


def test_cached_verdicts_equal_cold_ones_across_time_and_anchor(platform: SimulatedPlatform, tmp_path: Path) -> None:
    anchor, quote = platform.anchor(), _quote(platform)
    collateral = platform.collateral(AT)  # valid from AT - 1 day for 31 days
    other = SimulatedPlatform.create(tmp_path / "other").anchor()
    times = [AT - timedelta(days=2), AT, AT + timedelta(days=29), AT + timedelta(days=31)]
    cold = {(t, a.fingerprint): _cold(quote, collateral, a, t) for t in times for a in (anchor, other)}
    assert cold[(AT, anchor.fingerprint)] == "UpToDate"
    assert cold[(AT - timedelta(days=2), anchor.fingerprint)].startswith("CollateralExpired")
    assert cold[(AT + timedelta(days=31), anchor.fingerprint)].startswith("CollateralExpired")
    assert cold[(AT, other.fingerprint)].startswith("CertificateChainError")
    dcap.clear_cache()
    for _ in range(2):
        for t in times:
            for a in (anchor, other):
                assert _outcome(quote, collateral, a, t) == cold[(t, a.fingerprint)]


def test_changed_collateral_content_is_verified_again(platform: SimulatedPlatform) -> None:
    anchor, quote = platform.anchor(), _quote(platform)
    collateral = platform.collateral(AT)
    assert _outcome(quote, collateral, anchor, AT) == "UpToDate"
    tampered = dataclasses.replace(collateral, tcb_info=collateral.tcb_info.replace(b'"UpToDate"', b'"Revoked"'))
    assert _outcome(quote, tampered, anchor, AT).startswith("CollateralSignatureError: TCB info signature")
    revoked = platform.collateral(AT, revoke_pck=True)
    assert _outcome(quote, revoked, anchor, AT).startswith("PckRevoked")
    assert _outcome(quote, collateral, anchor, AT) == "UpToDate"


def test_qe_chain_errors_come_after_the_tcb_info_check(platform: SimulatedPlatform) -> None:
    """QVL's order: a bad TCB info signature is reported before a broken QE identity chain."""
    anchor, quote = platform.anchor(), _quote(platform)
    c = platform.collateral(AT)
    broken_qe_chain = dataclasses.replace(c, qe_identity_issuer_chain=c.pck_crl_issuer_chain[-600:])
    bad_tcb = dataclasses.replace(broken_qe_chain, tcb_info=c.tcb_info.replace(b'"UpToDate"', b'"Revoked"'))
    assert _outcome(quote, bad_tcb, anchor, AT).startswith("CollateralSignatureError: TCB info signature")
    with pytest.raises((dcap.CertificateChainError, dcap.ParseError)):
        dcap.verify_quote(quote, broken_qe_chain, anchor, at=AT)


@pytest.mark.parametrize(
    ("offset", "error"),
    [
        (436 + 128 + 64, dcap.QeReportSignatureError),  # QE report body
        (436 + 128 + 384 + 3, dcap.QeReportSignatureError),  # QE report signature
        (436 + 64 + 5, dcap.QeReportDataMismatch),  # attestation key (QE report no longer binds it)
        (436 + 10, dcap.QuoteSignatureError),  # quote signature
    ],
)
def test_a_warm_cache_still_checks_every_byte_of_the_quotes_signature_data(
    testdata: Path, offset: int, error: type[Exception]
) -> None:
    """The QE report whose signature was checked once is remembered by its exact bytes and
    signature: a quote with any other QE report, signature or attestation key is checked again."""
    d = testdata / "sgx-dcap" / "phala"
    quote, collateral = (d / "sgx_quote").read_bytes(), load_collateral(d / "sgx_quote_collateral.json")
    anchor, at = dcap.TrustAnchor.intel(), datetime(2025, 6, 20, tzinfo=UTC)
    for _ in range(2):  # warm: collateral, PCK leaf, QE report, attestation key
        dcap.verify_quote(quote, collateral, anchor, at=at)
    bad = bytearray(quote)
    bad[offset] ^= 0x01
    with pytest.raises(error):
        dcap.verify_quote(bytes(bad), collateral, anchor, at=at)
    dcap.verify_quote(quote, collateral, anchor, at=at)  # the good quote still verifies


def _qe_report_error(quote: bytes, collateral: dcap.Collateral, anchor: dcap.TrustAnchor) -> str:
    with pytest.raises(dcap.QeReportSignatureError) as e:
        dcap.verify_quote(quote, collateral, anchor, at=AT)
    return e.value.message


def test_a_platform_s_quotes_carry_the_one_qe_report_its_pce_signed(platform: SimulatedPlatform) -> None:
    """As on real hardware, the QE report and its PCK signature are the same bytes in every quote
    (what lets the check be remembered); the attestation key's signature is the quote's own."""
    one, two = _quote(platform), platform.quote(mrenclave=bytes(32), mrsigner=bytes(32), report_data=b"another")
    first, second = parse_quote(one), parse_quote(two)
    assert isinstance(first, QuoteV3) and isinstance(second, QuoteV3)
    assert (first.qe_report_raw, first.qe_report_signature) == (second.qe_report_raw, second.qe_report_signature)
    assert first.signature != second.signature


def test_a_remembered_qe_report_does_not_vouch_for_another_pck_key(
    platform: SimulatedPlatform, tmp_path: Path
) -> None:
    """Machine B's PCK chain (B's platform identity) with machine A's certified attestation key:
    A's QE report and signature, checked and remembered from A's quotes, are not signed by B's
    PCK key. Refused cold and warm, and A's own quotes still verify."""
    victim = SimulatedPlatform.create(tmp_path / "victim", authority=platform)
    hostile = BorrowedQeReport.of(victim, donor=platform)
    anchor, collateral = platform.anchor(), platform.collateral(AT)
    forged = _quote(hostile)
    cold = _qe_report_error(forged, collateral, anchor)
    assert cold == "QE report signature is not valid for the PCK certificate's key"
    dcap.clear_cache()
    for _ in range(2):  # warm: A's QE report remembered under A's PCK key
        assert _outcome(_quote(platform), collateral, anchor, AT) == "UpToDate"
    assert _qe_report_error(forged, collateral, anchor) == cold
    assert _outcome(_quote(victim), collateral, anchor, AT) == "UpToDate"  # B's genuine quotes are fine
    assert _qe_report_error(forged, collateral, anchor) == cold


def test_a_failed_qe_report_check_is_not_remembered(platform: SimulatedPlatform, tmp_path: Path) -> None:
    victim = SimulatedPlatform.create(tmp_path / "victim", authority=platform)
    forged = _quote(BorrowedQeReport.of(victim, donor=platform))
    anchor, collateral = platform.anchor(), platform.collateral(AT)
    for _ in range(2):
        _qe_report_error(forged, collateral, anchor)
        assert dcap._qe_reports == {}


def test_the_qe_report_memo_is_bounded_and_forgets_the_oldest(
    platform: SimulatedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dcap, "_QE_REPORTS_MAX", 2)
    machines = [platform] + [SimulatedPlatform.create(tmp_path / f"m{i}", authority=platform) for i in range(2)]
    anchor, collateral = platform.anchor(), platform.collateral(AT)
    for _ in range(2):
        for m in machines:
            assert _outcome(_quote(m), collateral, anchor, AT) == "UpToDate"
            assert len(dcap._qe_reports) <= 2
    last = parse_quote(_quote(machines[-1]))
    assert isinstance(last, QuoteV3)
    assert list(dcap._qe_reports)[-1][1:] == (last.qe_report_raw, last.qe_report_signature)
