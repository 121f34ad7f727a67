"""IAS report verification with the real reports, and the HTTP protocol against a local IAS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from floodlight_trust.claims import EvidenceType, TcbStatus
from floodlight_trust.clients.ias import IasClient
from floodlight_trust.clock import now, parse_time
from floodlight_trust.errors import ParseError, ServiceError
from floodlight_trust.evidence import ias
from floodlight_trust.secrets import Secret
from floodlight_trust.sgxsim.ias_service import SimulatedIas
from tests.support.cli import ftrust

AT = parse_time("2022-01-01T00:00:00Z")


def files(testdata: Path, name: str) -> tuple[bytes, bytes, bytes]:
    d = testdata / "ias" / name
    return (
        (d / "report.json").read_bytes(),
        (d / "x-iasreport-signature.b64").read_bytes(),
        (d / "x-iasreport-signing-certificate.pem").read_bytes(),
    )


@pytest.mark.parametrize(
    ("name", "status", "advisories", "debug"),
    [
        ("sn_ok_production", TcbStatus.UP_TO_DATE, (), False),
        (
            "sn_sw_config_needed",
            TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED,
            ("INTEL-SA-00334", "INTEL-SA-00161", "INTEL-SA-00219", "INTEL-SA-00289"),
            True,
        ),
        (
            "sn_out_of_date",
            TcbStatus.OUT_OF_DATE,
            ("INTEL-SA-00161", "INTEL-SA-00219", "INTEL-SA-00289", "INTEL-SA-00320", "INTEL-SA-00329"),
            True,
        ),
    ],
)
def test_real_reports_verify(
    testdata: Path, name: str, status: TcbStatus, advisories: tuple[str, ...], debug: bool
) -> None:
    body, sig, cert = files(testdata, name)
    anchor = (testdata / "ias/ias_root_ca_cert.der").read_bytes()
    assert anchor == ias.report_signing_ca()
    r = ias.verify_report(body, sig, cert, anchor, at=AT)
    assert r.claims.evidence_type is EvidenceType.IAS
    assert r.claims.tcb_status is status
    assert r.claims.advisory_ids == advisories
    assert r.claims.debug is debug
    assert r.claims.platform.epid_group_id and r.claims.qe_identity_status is None
    assert r.claims.collateral_issued_at == r.report.timestamp


def test_tampered_body_fails(testdata: Path) -> None:
    body, sig, cert = files(testdata, "sn_ok_production")
    bad = body.replace(b'"OK"', b'"OX"')
    with pytest.raises(ias.IasSignatureError, match="not a valid signature"):
        ias.verify_report(bad, sig, cert, ias.report_signing_ca(), at=AT)


def test_corrupted_certificate_fails_cleanly(testdata: Path) -> None:
    body, sig, _ = files(testdata, "sn_ok_production")
    corrupted = (testdata / "ias/ra_cert_corrupted.der").read_bytes()
    with pytest.raises(ParseError, match="not a valid certificate"):
        ias.verify_report(body, sig, corrupted, ias.report_signing_ca(), at=AT)


def test_other_anchor_refused(testdata: Path) -> None:
    body, sig, cert = files(testdata, "sn_ok_production")
    other = SimulatedIas("k").ca_der
    with pytest.raises(ias.IasSignatureError, match="not issued by the pinned"):
        ias.verify_report(body, sig, cert, other, at=AT)


def test_nonce_quote_and_age(testdata: Path) -> None:
    body, sig, cert = files(testdata, "sn_ok_production")
    anchor = ias.report_signing_ca()
    with pytest.raises(ias.IasBindingError, match="nonce"):
        ias.verify_report(body, sig, cert, anchor, at=AT, nonce="abc")
    with pytest.raises(ias.IasBindingError, match="not the quote submitted"):
        ias.verify_report(body, sig, cert, anchor, at=AT, quote=bytes(436))
    with pytest.raises(ias.IasReportTooOld, match="older than"):
        ias.verify_report(body, sig, cert, anchor, at=AT, max_age=timedelta(days=1))
    with pytest.raises(ias.IasSignatureError, match="not valid at"):
        ias.verify_report(body, sig, cert, anchor, at=parse_time("2027-01-01T00:00:00Z"))


def test_report_body_matches_epid_quote(testdata: Path) -> None:
    d = json.loads((testdata / "sgx-epid/mobilecoin/verifier_ias_ok.json").read_text())
    report = ias.parse_report(json.dumps(d).encode())
    assert (
        report.status == "OK" and report.nonce == "b6cb5af2a11cfe2f9c19b944b32c3aac" and len(report.quote_body) == 432
    )


@pytest.fixture
def server() -> Iterator[tuple[SimulatedIas, str]]:
    s = SimulatedIas("sub-key", status="CONFIGURATION_NEEDED", advisories=["INTEL-SA-00334"])
    url = s.start()
    yield s, url
    s.stop()


@pytest.mark.parametrize("version", [4, 5])
def test_client_round_trip_with_local_ias(server: tuple[SimulatedIas, str], testdata: Path, version: int) -> None:
    s, url = server
    quote = base64.b64decode((testdata / "sgx-epid/mobilecoin/core_to_ias.txt").read_text())
    client = IasClient(Secret("sub-key", "test"), url=url, api_version=version)
    resp = client.report(quote, nonce="0123456789abcdef")
    r = ias.verify_report(
        resp.body,
        resp.signature_b64,
        resp.signing_cert_pem,
        s.ca_der,
        at=now(),
        nonce="0123456789abcdef",
        quote=quote,
        max_age=timedelta(minutes=5),
    )
    assert r.claims.tcb_status is TcbStatus.CONFIGURATION_NEEDED
    assert r.claims.advisory_ids == ("INTEL-SA-00334",)
    assert r.report.version == version
    with pytest.raises(ias.IasSignatureError):  # the local IAS is not Intel
        ias.verify_report(resp.body, resp.signature_b64, resp.signing_cert_pem, ias.report_signing_ca(), at=now())


def test_client_errors(server: tuple[SimulatedIas, str], testdata: Path) -> None:
    _, url = server
    quote = base64.b64decode((testdata / "sgx-epid/mobilecoin/core_to_ias.txt").read_text())
    with pytest.raises(ServiceError, match="HTTP 401"):
        IasClient(Secret("wrong", "test"), url=url).report(quote)
    with pytest.raises(ServiceError, match="HTTP 400"):
        IasClient(Secret("sub-key", "test"), url=url).report(b"not a quote")
    with pytest.raises(ServiceError, match="unreachable"):
        IasClient(Secret("k", "t"), url="http://127.0.0.1:9", timeout=2).report(quote)


def test_rejected_status(testdata: Path) -> None:
    s = SimulatedIas("k", status="SIGNATURE_INVALID")
    url = s.start()
    try:
        quote = base64.b64decode((testdata / "sgx-epid/mobilecoin/core_to_ias.txt").read_text())
        resp = IasClient(Secret("k", "t"), url=url).report(quote)
        with pytest.raises(ias.IasQuoteRejected, match="SIGNATURE_INVALID"):
            ias.verify_report(resp.body, resp.signature_b64, resp.signing_cert_pem, s.ca_der, at=now())
    finally:
        s.stop()


REPORT_AT = parse_time("2021-11-24T00:00:00Z")  # sn_ok_production's report is of 2021-11-23


def _rsa_cert_ending_in(last: int, subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
    """A certificate whose DER ends in the byte ``last`` (RSA PKCS#1 v1.5 is deterministic, so
    stepping the serial number walks through signatures; 1 in 256 ends in any given byte)."""
    for serial in range(1, 20_000):
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(REPORT_AT - timedelta(days=1))
            .not_valid_after(REPORT_AT + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )
        if cert.public_bytes(Encoding.DER)[-1] == last:
            return cert
    raise AssertionError(f"no certificate ending in {last:#04x}")  # (255/256)^20000: never


def test_der_certificates_ending_in_whitespace_bytes(testdata: Path, tmp_path: Path) -> None:
    """DER is binary: a certificate whose last byte is 0x20 or 0x0a is still that certificate
    (``_certs`` once stripped it as if it were PEM text and refused about 1 in 50 certificates)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _rsa_cert_ending_in(0x0A, "test IAS CA", ca_key, "test IAS CA", ca_key, True)
    signer = _rsa_cert_ending_in(0x20, "test IAS signer", signer_key, "test IAS CA", ca_key, False)
    ca_der, signer_der = ca.public_bytes(Encoding.DER), signer.public_bytes(Encoding.DER)
    assert ca_der[-1:] == b"\n" and signer_der[-1:] == b" "
    body = (testdata / "ias/sn_ok_production/report.json").read_bytes()
    signature = base64.b64encode(signer_key.sign(body, padding.PKCS1v15(), hashes.SHA256()))
    for leaf in (signer_der, signer.public_bytes(Encoding.PEM)):
        result = ias.verify_report(body, signature, leaf, ca_der, at=REPORT_AT)
        assert result.claims.tcb_status is TcbStatus.UP_TO_DATE
    # The command line reads the same bytes from files: --anchor F.der with a DER ending in 0x0a.
    (tmp_path / "report.json").write_bytes(body)
    (tmp_path / "sig.b64").write_bytes(signature)
    (tmp_path / "signer.der").write_bytes(signer_der)
    (tmp_path / "anchor.der").write_bytes(ca_der)
    r = ftrust("ias", "verify-report", "--report", str(tmp_path / "report.json"), "--signature",
               str(tmp_path / "sig.b64"), "--cert", str(tmp_path / "signer.der"), "--anchor",
               str(tmp_path / "anchor.der"), "--at", "2021-11-24T00:00:00Z", timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("valid: IAS report")
