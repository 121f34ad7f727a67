"""The DCAP verifier makes the checks dcap-qvl makes (issue 15: "cold" is like for like with it),
shown case by case against dcap-qvl itself (the test extra) on the simulated platform, whose PKI
follows Intel's profile: each altered certificate, CRL or quote is refused by both, or accepted by
both, except for the checks this verifier makes beyond dcap-qvl, which are listed here by name.

dcap-qvl validates each chain with webpki: basicConstraints by role (a CA issues, an end entity
does not), an extended key usage, when present, that allows serverAuth, no unknown critical
extension, cRLSign in a CRL issuer's key usage, every certificate's validity, and revocation of
every certificate below the root by the CRL of its issuer (the root CA CRL also for the root itself
and the TCB signing certificates). Neither verifier checks the pinned root's self-signature: the
root is trusted for its bytes (its key and name), so a root certificate with a broken
self-signature is the same trust anchor, and a substituted root is another one.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence import dcap
from floodlight_trust.evidence.collateral import Collateral, collateral_to_json
from floodlight_trust.evidence.sgx_quote import SGX_EXTENSIONS_OID, QuoteV3, parse_quote
from floodlight_trust.sgxsim import SimulatedPlatform
from floodlight_trust.sgxsim import certificates as simcerts

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOT_BEFORE, NOT_AFTER = datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)
SGX_OID = x509.ObjectIdentifier(SGX_EXTENSIONS_OID)


@pytest.fixture(autouse=True)
def cold_cache() -> Iterator[None]:
    dcap.clear_cache()
    yield
    dcap.clear_cache()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("parity") / "platform")


def _quote(p: SimulatedPlatform) -> bytes:
    return p.quote(mrenclave=bytes(32), mrsigner=bytes(32), report_data=b"parity")


def _qvl(quote: bytes, collateral: Collateral, root: x509.Certificate) -> str:
    import dcap_qvl

    c = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral_to_json(collateral)))
    try:
        report = dcap_qvl.verify_with_root_ca(quote, c, root.public_bytes(Encoding.DER), int(AT.timestamp()))
    except ValueError as e:
        return f"refused: {e}"
    return f"accepted {report.status}"


def _ours(quote: bytes, collateral: Collateral, root: x509.Certificate) -> str:
    dcap.clear_cache()
    try:
        return (
            "accepted "
            + dcap.verify_quote(
                quote, collateral, dcap.TrustAnchor.unsafe_simulated(root), at=AT
            ).claims.tcb_status.value
        )
    except (dcap.DcapError, ParseError) as e:
        return f"refused: {type(e).__name__}: {e.message}"


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    *,
    ca: bool | None,
    crl_sign: bool = True,
    not_after: datetime = NOT_AFTER,
    extra: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    sgx: bytes | None = None,
) -> x509.Certificate:
    """A certificate of Intel's profile, with one thing changed (``ca=None``: no basicConstraints)."""
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca and crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    if sgx is not None:
        b = b.add_extension(x509.UnrecognizedExtension(SGX_OID, sgx), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _sgx(p: SimulatedPlatform) -> bytes:
    return p.pck_cert.extensions.get_extension_for_oid(SGX_OID).value.value  # type: ignore[attr-defined, no-any-return]


def _leaf(
    p: SimulatedPlatform,
    ca_cert: x509.Certificate | None = None,
    *,
    ca: bool | None = False,
    not_after: datetime = NOT_AFTER,
    extra: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> x509.Certificate:
    """The platform's PCK certificate again (same key and SGX extension), issued by ``ca_cert``."""
    issuer = ca_cert if ca_cert is not None else p.pck_ca_cert
    return _cert(
        p.pck_cert.subject, p.pck_key, p.pck_ca_key, issuer, ca=ca, not_after=not_after, extra=extra, sgx=_sgx(p)
    )


def _root_crl(
    p: SimulatedPlatform, revoked: list[int], this: datetime | None = None, next_: datetime | None = None
) -> bytes:
    issue = AT - timedelta(days=1)
    return simcerts.crl(p.root_key, p.root_cert, this or issue, next_ or issue + timedelta(days=31), revoked)


def _with_crl(p: SimulatedPlatform, crl: bytes) -> Callable[[], tuple[bytes, Collateral, x509.Certificate]]:
    return lambda: (_quote(p), dataclasses.replace(p.collateral(AT), root_ca_crl=crl), p.root_cert)


def _machine(p: SimulatedPlatform, **changes: object) -> Callable[[], tuple[bytes, Collateral, x509.Certificate]]:
    q = dataclasses.replace(p, **changes)  # type: ignore[arg-type]
    return lambda: (_quote(q), q.collateral(AT), q.root_cert)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def _cases(p: SimulatedPlatform) -> dict[str, Callable[[], tuple[bytes, Collateral, x509.Certificate]]]:
    c = p.collateral(AT)
    ca_name = p.pck_ca_cert.subject
    not_a_ca = _cert(ca_name, p.pck_ca_key, p.root_key, p.root_cert, ca=False)
    no_crl_sign = _cert(ca_name, p.pck_ca_key, p.root_key, p.root_cert, ca=True, crl_sign=False)
    unknown_critical = (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), True)
    client_auth = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    server_auth = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    code_signing = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
    tcb_subject = p.tcb_cert.subject
    broken_root = x509.load_der_x509_certificate(_flip(p.root_cert.public_bytes(Encoding.DER), -3))
    return {
        "genuine": _machine(p),
        "root CA CRL revokes the TCB signing certificate": _with_crl(p, _root_crl(p, [p.tcb_cert.serial_number])),
        "root CA CRL revokes the root": _with_crl(p, _root_crl(p, [p.root_cert.serial_number])),
        "root CA CRL revokes the PCK CA": _with_crl(p, _root_crl(p, [p.pck_ca_cert.serial_number])),
        "root CA CRL signature changed": _with_crl(p, _flip(c.root_ca_crl, len(c.root_ca_crl) - 5)),
        "PCK CRL signature changed": lambda: (
            _quote(p),
            dataclasses.replace(c, pck_crl=_flip(c.pck_crl, len(c.pck_crl) - 5)),
            p.root_cert,
        ),
        "root CA CRL past its nextUpdate": _with_crl(
            p, _root_crl(p, [], AT - timedelta(days=2), AT - timedelta(hours=1))
        ),
        "PCK CA without basicConstraints cA": _machine(p, pck_ca_cert=not_a_ca, pck_cert=_leaf(p, not_a_ca)),
        "PCK CA whose key usage excludes cRLSign": _machine(p, pck_ca_cert=no_crl_sign, pck_cert=_leaf(p, no_crl_sign)),
        "TCB signing certificate that is a CA": _machine(
            p, tcb_cert=_cert(tcb_subject, p.tcb_key, p.root_key, p.root_cert, ca=True)
        ),
        "TCB signing certificate for code signing only": _machine(
            p, tcb_cert=_cert(tcb_subject, p.tcb_key, p.root_key, p.root_cert, ca=False, extra=(code_signing,))
        ),
        "PCK certificate that is a CA": _machine(p, pck_cert=_leaf(p, ca=True)),
        "PCK certificate with an unknown critical extension": _machine(p, pck_cert=_leaf(p, extra=(unknown_critical,))),
        "PCK certificate for client authentication only": _machine(p, pck_cert=_leaf(p, extra=(client_auth,))),
        "PCK certificate for server authentication": _machine(p, pck_cert=_leaf(p, extra=(server_auth,))),
        "PCK certificate without basicConstraints or key usage": _machine(p, pck_cert=_leaf(p, ca=None)),
        "PCK certificate expired": _machine(p, pck_cert=_leaf(p, not_after=AT - timedelta(days=1))),
        "root with a broken self-signature (the same anchor)": lambda: (_quote(p), c, broken_root),
        # Beyond dcap-qvl: the anchor's own validity window, and a CRL's thisUpdate.
        "root expired": _machine(
            p,
            root_cert=_cert(
                p.root_cert.subject, p.root_key, p.root_key, None, ca=True, not_after=AT - timedelta(days=2)
            ),
        ),
        "root CA CRL not yet valid": _with_crl(p, _root_crl(p, [], AT + timedelta(hours=1))),
    }


# What each verifier says, by case: True accepted, False refused (and, for ours, the error it names).
EXPECTED: dict[str, tuple[bool, bool, str]] = {
    "genuine": (True, True, ""),
    "root CA CRL revokes the TCB signing certificate": (
        False,
        False,
        "CertificateRevoked: TCB info signing certificate",
    ),
    "root CA CRL revokes the root": (False, False, "CertificateRevoked: the trust anchor"),
    "root CA CRL revokes the PCK CA": (False, False, "PckRevoked: PCK CA certificate"),
    "root CA CRL signature changed": (False, False, "CollateralSignatureError: root CA CRL"),
    "PCK CRL signature changed": (False, False, "CollateralSignatureError: PCK CRL"),
    "root CA CRL past its nextUpdate": (False, False, "CollateralExpired: root CA CRL expired"),
    "PCK CA without basicConstraints cA": (False, False, "CertificateProfileError: PCK CA certificate"),
    "PCK CA whose key usage excludes cRLSign": (False, False, "excludes cRLSign"),
    "TCB signing certificate that is a CA": (False, False, "used as an end entity"),
    "TCB signing certificate for code signing only": (False, False, "without id-kp-serverAuth"),
    "PCK certificate that is a CA": (False, False, "CertificateProfileError: PCK certificate"),
    "PCK certificate with an unknown critical extension": (False, False, "unsupported critical extension 1.2.3.4.5"),
    "PCK certificate for client authentication only": (False, False, "without id-kp-serverAuth"),
    "PCK certificate for server authentication": (True, True, ""),
    "PCK certificate without basicConstraints or key usage": (True, True, ""),
    "PCK certificate expired": (False, False, "CollateralExpired: PCK certificate expired"),
    "root with a broken self-signature (the same anchor)": (True, True, ""),
    "root expired": (True, False, "CollateralExpired: SIMULATED SGX root"),
    "root CA CRL not yet valid": (True, False, "CollateralExpired: root CA CRL is not yet valid"),
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_each_check_agrees_with_dcap_qvl_or_is_a_named_extra(platform: SimulatedPlatform, case: str) -> None:
    quote, collateral, root = _cases(platform)[case]()
    qvl_accepts, ours_accepts, reason = EXPECTED[case]
    qvl, ours = _qvl(quote, collateral, root), _ours(quote, collateral, root)
    assert qvl.startswith("accepted") is qvl_accepts, qvl
    assert ours.startswith("accepted") is ours_accepts, ours
    assert reason in ours


def test_every_case_is_listed(platform: SimulatedPlatform) -> None:
    assert set(_cases(platform)) == set(EXPECTED)


def test_qe_report_data_beyond_the_hash_must_be_zero(platform: SimulatedPlatform) -> None:
    """Beyond dcap-qvl, which compares only the first 32 bytes of the QE report data: the other 32
    must be zero, as Intel's QVL requires (the QE fills them so)."""
    quote = _quote(platform)
    q = parse_quote(quote)
    assert isinstance(q, QuoteV3)
    sig_data_at = len(q.signed_region) + 4
    report_at = sig_data_at + 64 + 64
    report = bytearray(quote[report_at : report_at + 384])
    report[320 + 40] = 0x01  # a byte of the QE report data's second half
    signature = simcerts.raw_sign(platform.pck_key, bytes(report))
    changed = quote[:report_at] + bytes(report) + signature + quote[report_at + 384 + 64 :]
    assert struct.unpack_from("<I", changed, len(q.signed_region))[0] == len(changed) - sig_data_at
    collateral = platform.collateral(AT)
    assert _qvl(changed, collateral, platform.root_cert).startswith("accepted")
    assert "QeReportDataMismatch" in _ours(changed, collateral, platform.root_cert)


def test_a_substituted_root_is_another_anchor(platform: SimulatedPlatform, tmp_path: Path) -> None:
    """The pin is the root's bytes: the same quote and collateral under another root (a substituted
    root certificate with the same name) are refused by both verifiers."""
    other = SimulatedPlatform.create(tmp_path / "other")
    impostor = _cert(platform.root_cert.subject, other.root_key, other.root_key, None, ca=True)
    quote, collateral = _quote(platform), platform.collateral(AT)
    assert _qvl(quote, collateral, impostor).startswith("refused")
    assert _ours(quote, collateral, impostor).startswith("refused: CertificateChainError")
