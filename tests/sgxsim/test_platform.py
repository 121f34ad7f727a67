"""The simulated platform: its quotes verify through the real DCAP path, and only under its own root."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from floodlight_trust.claims import TcbStatus
from floodlight_trust.clock import parse_time
from floodlight_trust.errors import InputError, ParseError, VerificationError
from floodlight_trust.evidence import dcap
from floodlight_trust.evidence.sgx_quote import SGX_EXTENSIONS_OID, QuoteV3, parse_pck_extensions, parse_quote
from floodlight_trust.sgxsim import SimulatedPlatform, measure_enclave_image
from floodlight_trust.sgxsim.certificates import raw_sign

AT = parse_time("2026-03-01T12:00:00Z")
MRSIGNER = bytes.fromhex("11" * 32)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("sim") / "platform")


def make_quote(p: SimulatedPlatform, image: bytes = b"vnf-firewall v1", **kw: object) -> bytes:
    return p.quote(mrenclave=measure_enclave_image(image), mrsigner=MRSIGNER, report_data=b"\x42" * 32, **kw)  # type: ignore[arg-type]


def test_sim_quote_verifies_through_dcap(platform: SimulatedPlatform) -> None:
    quote = make_quote(platform, isv_prod_id=7, isv_svn=3)
    r = dcap.verify_quote(quote, platform.collateral(AT), platform.anchor(), at=AT)
    c = r.claims
    assert c.simulated is True
    assert c.tcb_status is TcbStatus.UP_TO_DATE and c.qe_identity_status is TcbStatus.UP_TO_DATE
    assert c.mrenclave == measure_enclave_image(b"vnf-firewall v1").hex()
    assert c.mrsigner == MRSIGNER.hex()
    assert (c.isv_prod_id, c.isv_svn, c.debug) == (7, 3, False)
    assert c.report_data == ("42" * 32) + "00" * 32
    assert c.platform.pck_certificate_sha256 == platform.pck_certificate_sha256
    assert any("NOT real SGX hardware" in w for w in r.warnings)


def test_sim_quote_structure_is_dcap_v3(platform: SimulatedPlatform) -> None:
    q = parse_quote(make_quote(platform, debug=True))
    assert isinstance(q, QuoteV3)
    assert (q.version, q.att_key_type, q.cert_data_type) == (3, 2, 5)
    assert q.report.debug and q.report.mode64bit
    leaf = x509.load_pem_x509_certificate(q.pck_chain_pem()[0])
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID)).value
    pck = parse_pck_extensions(ext.value)  # type: ignore[attr-defined]
    assert pck.pce_svn == 13 and len(pck.fmspc) == 6 and len(pck.ppid) == 16


def test_sim_quote_not_trusted_under_intel_root(platform: SimulatedPlatform) -> None:
    with pytest.raises(dcap.CertificateChainError):
        dcap.verify_quote(make_quote(platform), platform.collateral(AT), dcap.TrustAnchor.intel(), at=AT)


def test_every_byte_of_signed_region_is_protected(platform: SimulatedPlatform) -> None:
    quote, coll, anchor = make_quote(platform), platform.collateral(AT), platform.anchor()
    dcap.verify_quote(quote, coll, anchor, at=AT)
    for i in range(0, 432, 7):
        bad = bytearray(quote)
        bad[i] ^= 0x80
        with pytest.raises((VerificationError, ParseError)):
            dcap.verify_quote(bytes(bad), coll, anchor, at=AT)


def test_one_byte_of_image_changes_mrenclave(tmp_path: Path) -> None:
    d = tmp_path / "img"
    d.mkdir()
    (d / "app.bin").write_bytes(b"code")
    (d / "vnf.toml").write_text("port = 1\n")
    before = measure_enclave_image(d)
    (d / "vnf.toml").write_text("port = 2\n")
    assert measure_enclave_image(d) != before
    assert measure_enclave_image(b"abc") != measure_enclave_image(b"abd")
    (tmp_path / "f").write_bytes(b"abc")
    assert measure_enclave_image(tmp_path / "f") == measure_enclave_image(b"abc")


def test_two_platforms_have_different_pck(tmp_path: Path) -> None:
    a = SimulatedPlatform.create(tmp_path / "a")
    b = SimulatedPlatform.create(tmp_path / "b")
    ca = dcap.verify_quote(make_quote(a), a.collateral(AT), a.anchor(), at=AT).claims
    cb = dcap.verify_quote(make_quote(b), b.collateral(AT), b.anchor(), at=AT).claims
    assert ca.platform.pck_certificate_sha256 != cb.platform.pck_certificate_sha256
    with pytest.raises(dcap.CertificateChainError):  # b's quote under a's root, even with b cached
        dcap.verify_quote(make_quote(b), a.collateral(AT), a.anchor(), at=AT)


def test_shared_authority_one_anchor_distinct_pck(tmp_path: Path) -> None:
    a = SimulatedPlatform.create(tmp_path / "a")
    b = SimulatedPlatform.load(SimulatedPlatform.create(tmp_path / "b", authority=a).directory)
    coll, anchor = a.collateral(AT), a.anchor()
    ca = dcap.verify_quote(make_quote(a), coll, anchor, at=AT).claims
    cb = dcap.verify_quote(make_quote(b), coll, anchor, at=AT).claims
    assert ca.platform.pck_certificate_sha256 == a.pck_certificate_sha256
    assert cb.platform.pck_certificate_sha256 == b.pck_certificate_sha256 != a.pck_certificate_sha256


def test_load_round_trip(platform: SimulatedPlatform) -> None:
    again = SimulatedPlatform.load(platform.directory)
    assert again.pck_certificate_sha256 == platform.pck_certificate_sha256
    r = dcap.verify_quote(make_quote(again), platform.collateral(AT), platform.anchor(), at=AT)
    assert r.claims.platform.pck_certificate_sha256 == platform.pck_certificate_sha256
    assert (platform.directory / "sim-pck.key").stat().st_mode & 0o077 == 0


def test_create_refuses_existing(platform: SimulatedPlatform) -> None:
    with pytest.raises(InputError, match="already exists"):
        SimulatedPlatform.create(platform.directory)


def test_expired_and_revoked(platform: SimulatedPlatform) -> None:
    quote, anchor = make_quote(platform), platform.anchor()
    coll = platform.collateral(AT)
    with pytest.raises(dcap.CollateralExpired, match="expired"):
        dcap.verify_quote(quote, coll, anchor, at=parse_time("2026-05-01T00:00:00Z"))
    with pytest.raises(dcap.CollateralExpired, match="not yet valid"):
        dcap.verify_quote(quote, coll, anchor, at=parse_time("2026-02-01T00:00:00Z"))
    with pytest.raises(dcap.PckRevoked, match="revoked by the PCK CRL"):
        dcap.verify_quote(quote, platform.collateral(AT, revoke_pck=True), anchor, at=AT)


def test_configured_tcb_status(tmp_path: Path) -> None:
    p = SimulatedPlatform.create(tmp_path / "old", tcb_status=TcbStatus.SW_HARDENING_NEEDED)
    p = SimulatedPlatform.load(p.directory)
    c = dcap.verify_quote(make_quote(p), p.collateral(AT), p.anchor(), at=AT).claims
    assert c.tcb_status is TcbStatus.SW_HARDENING_NEEDED and c.advisory_ids == ("INTEL-SA-00000",)


def test_no_tcb_level_for_platform(platform: SimulatedPlatform) -> None:
    coll = platform.collateral(AT)
    info = json.loads(coll.tcb_info)
    for level in info["tcbLevels"]:
        level["tcb"]["pcesvn"] = 99
    raw = json.dumps(info, separators=(",", ":")).encode()
    coll = dataclasses.replace(coll, tcb_info=raw, tcb_info_signature=raw_sign(platform.tcb_key, raw))
    with pytest.raises(dcap.TcbLevelNotFound, match="no TCB level for FMSPC"):
        dcap.verify_quote(make_quote(platform), coll, platform.anchor(), at=AT)
    info["fmspc"] = "AABBCCDDEEFF"
    raw = json.dumps(info, separators=(",", ":")).encode()
    coll = dataclasses.replace(coll, tcb_info=raw, tcb_info_signature=raw_sign(platform.tcb_key, raw))
    with pytest.raises(dcap.TcbLevelNotFound, match="TCB info is for FMSPC aabbccddeeff"):
        dcap.verify_quote(make_quote(platform), coll, platform.anchor(), at=AT)


def test_report_data_too_long(platform: SimulatedPlatform) -> None:
    with pytest.raises(InputError, match="at most 64"):
        platform.quote(mrenclave=bytes(32), mrsigner=bytes(32), report_data=bytes(65))


def _extensions(obj: x509.Certificate | x509.CertificateRevocationList) -> set[str]:
    return {e.oid.dotted_string for e in obj.extensions}


def test_sim_certificates_and_crls_follow_intels_profiles(platform: SimulatedPlatform, testdata: Path) -> None:
    """The same extensions as Intel's real root CA, PCK CA, TCB signing certificate and CRLs (the
    phala collateral): CRL Number and Authority Key Identifier on CRLs; AKI, SKI, CRL distribution
    point, key usage and basic constraints on certificates."""
    from floodlight_trust.clients.collateral_files import load_collateral

    real = load_collateral(testdata / "sgx-dcap/phala/sgx_quote_collateral.json")
    sim = platform.collateral(AT)
    for name in ("root_ca_crl", "pck_crl"):
        ours, intels = x509.load_der_x509_crl(getattr(sim, name)), x509.load_der_x509_crl(getattr(real, name))
        assert _extensions(ours) == _extensions(intels), name
        ours_aki = ours.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        issuer = platform.root_cert if name == "root_ca_crl" else platform.pck_ca_cert
        assert ours_aki == issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    intel_root = x509.load_der_x509_certificate((testdata / "sgx-dcap/phala/TrustedRootCA.der").read_bytes())
    for cert in (platform.root_cert, platform.pck_ca_cert, platform.tcb_cert):
        assert _extensions(cert) == _extensions(intel_root), cert.subject.rfc4514_string()
    assert _extensions(platform.pck_cert) == _extensions(intel_root) | {SGX_EXTENSIONS_OID}
    later = x509.load_der_x509_crl(platform.collateral(AT + timedelta(days=1)).pck_crl)
    number = x509.load_der_x509_crl(sim.pck_crl).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert later.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number


def test_an_independent_verifier_accepts_sim_quotes_and_refuses_a_changed_byte(platform: SimulatedPlatform) -> None:
    """dcap-qvl (Phala's Rust implementation of Intel's QVL, in the test extra) verifies the sim's
    quotes with their collateral under the sim's root, as our verifier does, and refuses a quote
    with one byte changed."""
    import dcap_qvl
    from cryptography.hazmat.primitives.serialization import Encoding

    from floodlight_trust.evidence.collateral import collateral_to_json

    quote = make_quote(platform, isv_prod_id=7, isv_svn=3)
    collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral_to_json(platform.collateral(AT))))
    root = platform.root_cert.public_bytes(Encoding.DER)
    at = int(AT.timestamp())
    report = dcap_qvl.verify_with_root_ca(quote, collateral, root, at)
    assert report.status == "UpToDate"
    assert (
        dcap.verify_quote(quote, platform.collateral(AT), platform.anchor(), at=AT).claims.tcb_status
        is TcbStatus.UP_TO_DATE
    )
    changed = bytearray(quote)
    changed[112 + 64] ^= 0x01  # a byte of MRENCLAVE in the report body
    with pytest.raises(ValueError, match="signature is invalid"):
        dcap_qvl.verify_with_root_ca(bytes(changed), collateral, root, at)
    # Under another root (Intel's), the sim's quote is refused by dcap-qvl too.
    other = SimulatedPlatform.create(Path(platform.directory).parent / "other-root")
    with pytest.raises(ValueError):
        dcap_qvl.verify_with_root_ca(quote, collateral, other.root_cert.public_bytes(Encoding.DER), at)
