"""The DER the DCAP verifier reads itself (issue 15: names, signed parts and the SGX extension
sliced from the encoding instead of built by cryptography) says what cryptography says, on every
real certificate and CRL in tests/data; and a signature check on the sliced bytes refuses what
``verify_directly_issued_by`` refuses."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.errors import ParseError
from floodlight_trust.evidence import dcap, der
from floodlight_trust.evidence.sgx_quote import QuoteV3, _pairs, oid_der, parse_quote, split_pem
from floodlight_trust.evidence.x509_der import extension_profile

DATA = Path(__file__).resolve().parents[2] / "data" / "sgx-dcap"
PHALA = DATA / "phala"
MOBILECOIN = DATA / "mobilecoin-attestation"


def _real_certificates() -> list[bytes]:
    collateral = load_collateral(PHALA / "sgx_quote_collateral.json")
    quote = parse_quote((PHALA / "sgx_quote").read_bytes())
    assert isinstance(quote, QuoteV3)
    blocks = [*quote.pck_chain_pem(), *split_pem(collateral.tcb_info_issuer_chain)]
    blocks += split_pem(collateral.pck_crl_issuer_chain)
    for name in ("leaf_cert.pem", "processor_ca.pem", "root_ca.pem", "tcb_signer.pem"):
        blocks += split_pem((MOBILECOIN / name).read_bytes())
    ders = {x509.load_pem_x509_certificate(b).public_bytes(Encoding.DER) for b in blocks}
    ders.add((PHALA / "TrustedRootCA.der").read_bytes())
    return sorted(ders)


def _real_crls() -> list[bytes]:
    collateral = load_collateral(PHALA / "sgx_quote_collateral.json")
    return [collateral.pck_crl, collateral.root_ca_crl, *(p.read_bytes() for p in sorted(DATA.glob("*/*crl.der")))]


CERTS = _real_certificates()
CRLS = _real_crls()


@pytest.mark.parametrize("cert_der", CERTS, ids=range(len(CERTS)))
def test_certificate_layout_is_what_cryptography_reads(cert_der: bytes) -> None:
    cert = x509.load_der_x509_certificate(cert_der)
    layout = dcap._layout(cert_der, crl=False)
    assert layout is not None
    assert layout.tbs == cert.tbs_certificate_bytes
    assert layout.issuer == cert.issuer.public_bytes()
    assert layout.subject == cert.subject.public_bytes()
    assert layout.algorithm is not None  # inner and outer signature algorithms agree in Intel's certificates
    extensions = layout.extensions
    assert extensions is not None
    values = _extension_values(extensions)
    assert len(values) == len(cert.extensions)
    for ext in cert.extensions:
        assert values[oid_der(ext.oid.dotted_string)] == ext.value.public_bytes()
    profile = extension_profile(extensions, "a real certificate", dcap._oid_text)
    assert profile.sgx == values.get(dcap._SGX_EXT_DER)
    assert profile.critical == tuple(oid_der(e.oid.dotted_string) for e in cert.extensions if e.critical)


def _extension_values(extensions: bytes) -> dict[bytes, bytes]:
    """Each extension's extnValue by OID, read with the plain DER reader (the oracle)."""
    values = {}
    for _, _, s, e in der.children(extensions, 0, len(extensions)):
        parts = der.children(extensions, s, e)  # extnID, [critical], extnValue
        values[extensions[parts[0][2] : parts[0][3]]] = extensions[parts[-1][2] : parts[-1][3]]
    return values


@pytest.mark.parametrize("crl_der", CRLS, ids=range(len(CRLS)))
def test_crl_layout_is_what_cryptography_reads(crl_der: bytes) -> None:
    crl = x509.load_der_x509_crl(crl_der)
    layout = dcap._layout(crl_der, crl=True)
    assert layout is not None
    assert layout.tbs == crl.tbs_certlist_bytes
    assert layout.issuer == crl.issuer.public_bytes()
    assert layout.subject is None and layout.extensions is None


def test_pck_sgx_extension_read_from_the_der() -> None:
    quote = parse_quote((PHALA / "sgx_quote").read_bytes())
    assert isinstance(quote, QuoteV3)
    leaf = x509.load_pem_x509_certificate(quote.pck_chain_pem()[0])
    layout = dcap._layout(leaf.public_bytes(Encoding.DER), crl=False)
    assert layout is not None and layout.extensions is not None
    expected = leaf.extensions.get_extension_for_oid(dcap._SGX_EXT).value.value  # type: ignore[attr-defined]
    assert extension_profile(layout.extensions, "PCK certificate", dcap._oid_text).sgx == expected
    twice = layout.extensions + layout.extensions
    with pytest.raises(ParseError, match="twice"):
        extension_profile(twice, "PCK certificate", dcap._oid_text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cert_der=st.sampled_from(CERTS), data=st.data())
def test_damaged_certificate_layout_never_raises(cert_der: bytes, data: st.DataObject) -> None:
    """Damaged DER gives a layout, None (then cryptography's calls decide), or a ParseError."""
    at = data.draw(st.integers(0, len(cert_der) - 1))
    damaged = cert_der[:at] + bytes([data.draw(st.integers(0, 255))]) + cert_der[at + 1 :]
    layout = dcap._layout(damaged, crl=False)
    if layout is not None and layout.extensions is not None:
        try:
            extension_profile(layout.extensions, "a damaged certificate", dcap._oid_text)
        except ParseError:
            pass


def _entry(cert_der: bytes) -> dcap._Cert:
    return dcap._Cert(x509.load_der_x509_certificate(cert_der), cert_der, dcap._layout(cert_der, crl=False))


def _pck_pair() -> tuple[dcap._Cert, x509.Certificate, bytes]:
    quote = parse_quote((PHALA / "sgx_quote").read_bytes())
    assert isinstance(quote, QuoteV3)
    leaf_pem, ca_pem = quote.pck_chain_pem()[:2]
    leaf = x509.load_pem_x509_certificate(leaf_pem).public_bytes(Encoding.DER)
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_layout = dcap._layout(ca.public_bytes(Encoding.DER), crl=False)
    assert ca_layout is not None and ca_layout.subject is not None
    return _entry(leaf), ca, ca_layout.subject


def test_issued_by_on_sliced_der_accepts_the_real_chain() -> None:
    leaf, ca, ca_subject = _pck_pair()
    dcap._issued_by(leaf, ca, ca_subject, "PCK certificate")
    leaf.cert.verify_directly_issued_by(ca)  # the same verdict as cryptography's


def test_issued_by_refuses_a_flipped_signed_byte_and_another_issuer() -> None:
    leaf, ca, ca_subject = _pck_pair()
    layout = leaf.layout
    assert layout is not None
    rnd = random.Random(15)
    start = leaf.der.index(layout.tbs)
    for _ in range(20):  # a flip anywhere in the signed part: the signature no longer verifies
        at = start + rnd.randrange(len(layout.tbs))
        damaged = leaf.der[:at] + bytes([leaf.der[at] ^ 0x01]) + leaf.der[at + 1 :]
        try:
            entry = _entry(damaged)
        except ValueError:
            continue  # cryptography refuses to load it at all
        with pytest.raises(dcap.CertificateChainError):
            dcap._issued_by(entry, ca, ca_subject, "PCK certificate")
    root = dcap.TrustAnchor.intel()
    with pytest.raises(dcap.CertificateChainError, match="is not issued by"):
        dcap._issued_by(leaf, root.certificate, root.subject_der, "PCK certificate")


def test_signed_by_refuses_differing_inner_and_outer_algorithms() -> None:
    leaf, ca, _ = _pck_pair()
    layout = leaf.layout
    assert layout is not None
    mixed = dcap._Layout(layout.tbs, None, layout.issuer, layout.subject, layout.extensions)
    args = (ca.public_key(), leaf.cert.signature, leaf.cert.signature_algorithm_oid)
    assert dcap._signed_by(*args, layout) is True
    assert dcap._signed_by(*args, mixed) is False
    assert dcap._signed_by(*args, None) is None  # undecided here: cryptography's check runs


def test_issued_by_falls_back_to_cryptography_for_other_algorithms() -> None:
    """A chain that is not ECDSA (here RSA-signed) is checked by verify_directly_issued_by."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rsa test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    entry = _entry(cert.public_bytes(Encoding.DER))
    assert entry.layout is not None
    assert dcap._signed_by(key.public_key(), cert.signature, cert.signature_algorithm_oid, entry.layout) is None
    dcap._issued_by(entry, cert, entry.layout.subject, "self-signed RSA")
    other = ec.generate_private_key(ec.SECP256R1())
    impostor = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(other.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(other, hashes.SHA256())
    )
    with pytest.raises(dcap.CertificateChainError):
        dcap._issued_by(entry, impostor, entry.layout.subject, "self-signed RSA")


def _reference_pairs(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int, int]]:
    """The plain SGX-extension pair reader (der.children), the oracle for the inline fast path."""
    out = {}
    for tag, _, s, e in der.children(data, start, end):
        if tag != 0x30:
            raise ParseError("not a SEQUENCE")
        inner = der.children(data, s, e)
        if len(inner) != 2 or inner[0][0] != 0x06:
            raise ParseError("not (OID, value)")
        out[data[inner[0][2] : inner[0][3]]] = inner[1][0], inner[1][2], inner[1][3]
    return out


def _sgx_extension_body() -> bytes:
    quote = parse_quote((PHALA / "sgx_quote").read_bytes())
    assert isinstance(quote, QuoteV3)
    leaf = x509.load_pem_x509_certificate(quote.pck_chain_pem()[0])
    value: bytes = leaf.extensions.get_extension_for_oid(dcap._SGX_EXT).value.value  # type: ignore[attr-defined]
    _, start, end = der.tlv(value, 0)
    return value[start:end]


SGX_BODY = _sgx_extension_body()


def _pairs_outcome(reader: object, data: bytes) -> object:
    try:
        return reader(data, 0, len(data))  # type: ignore[operator]
    except ParseError:
        return "error"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(edits=st.lists(st.tuples(st.integers(0, len(SGX_BODY) - 1), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(0, 6))  # fmt: skip
def test_sgx_extension_pairs_agree_with_the_plain_reader(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(SGX_BODY)
    for at, value in edits:
        data[at] = value
    damaged = bytes(data[: len(data) - cut])
    assert _pairs_outcome(_pairs, damaged) == _pairs_outcome(_reference_pairs, damaged)
    assert _pairs_outcome(_pairs, SGX_BODY) == _reference_pairs(SGX_BODY, 0, len(SGX_BODY))


@pytest.mark.parametrize("cert_der", CERTS, ids=range(len(CERTS)))
def test_certificate_profile_read_from_the_der_is_what_cryptography_reads(cert_der: bytes) -> None:
    """The path checks (basicConstraints, key usage, extended key usage, the SGX extension) read
    from the DER agree with cryptography's parse, and with the fallback built on it."""
    cert = x509.load_der_x509_certificate(cert_der)
    entry = _entry(cert_der)
    profile = dcap._profile(entry, "a real certificate")
    fallback = dcap._profile(dcap._Cert(cert, cert_der, None), "a real certificate")
    assert profile == fallback
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    assert profile.ca is ca
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert profile.key_usage == ku.value.public_bytes()[2:]  # the BIT STRING's contents
        crl_sign: bool | None = ku.value.crl_sign
    except x509.ExtensionNotFound:
        assert profile.key_usage is None
        crl_sign = None
    assert profile.eku is None  # Intel's certificates name no extended key usage
    try:
        sgx = cert.extensions.get_extension_for_oid(dcap._SGX_EXT).value.value  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        sgx = None
    assert profile.sgx == sgx
    role = "CA" if ca else "end entity"
    dcap._check_profile(entry, role, ca=ca, crl_signer=bool(crl_sign))  # Intel's own chains pass
    with pytest.raises(dcap.CertificateProfileError, match="CA" if not ca else "end entity"):
        dcap._check_profile(entry, role, ca=not ca)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cert_der=st.sampled_from(CERTS), data=st.data())
def test_damaged_extensions_give_a_profile_or_a_located_error(cert_der: bytes, data: st.DataObject) -> None:
    layout = dcap._layout(cert_der, crl=False)
    assert layout is not None and layout.extensions is not None
    exts = bytearray(layout.extensions)
    at = data.draw(st.integers(0, len(exts) - 1))
    exts[at] = data.draw(st.integers(0, 255))
    damaged = dcap._Cert(x509.load_der_x509_certificate(cert_der), cert_der, layout._replace(extensions=bytes(exts)))
    try:
        dcap._profile(damaged, "a damaged certificate")
    except (ParseError, dcap.CertificateProfileError):
        pass


def _reference_pem_der(block: bytes) -> bytes | None:
    """The plain PEM body decoder (the standard library's strict base64), the oracle for the fast one."""
    import base64
    import binascii

    start, end = block.find(b"-----BEGIN CERTIFICATE-----"), block.rfind(b"-----END CERTIFICATE-----")
    if start < 0 or end < start:
        return None
    try:
        return base64.b64decode(b"".join(block[start + 27 : end].split()), validate=True)
    except (binascii.Error, ValueError):
        return None


@pytest.mark.parametrize("cert_der", CERTS, ids=range(len(CERTS)))
def test_pem_bodies_decode_as_the_standard_decoder_does(cert_der: bytes) -> None:
    pem = x509.load_der_x509_certificate(cert_der).public_bytes(Encoding.PEM)
    for block in (pem, pem.replace(b"\n", b"\r\n"), pem.replace(b"\n", b" \n")):
        assert dcap._pem_der(block) == _reference_pem_der(block) == cert_der


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    cert_der=st.sampled_from(CERTS),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.sampled_from(b"A/+=\n\r -_!\x00")), max_size=4),
)
def test_damaged_pem_bodies_decode_as_the_standard_decoder_does(cert_der: bytes, edits: list[tuple[int, int]]) -> None:
    block = bytearray(x509.load_der_x509_certificate(cert_der).public_bytes(Encoding.PEM))
    for at, byte in edits:
        block[27 + at % (len(block) - 54)] = byte
    assert dcap._pem_der(bytes(block)) == _reference_pem_der(bytes(block))
