"""The strict CRL walk (``_derwalk.crl_fields``, its reference ``x509_der.crl_fields_py``) reads a
CRL only in the form Intel publishes and hands every other to cryptography: whatever it reads,
cryptography's full parse reads the same (so a CRL it accepts is one cryptography accepts, with the
same fields), and the verifier's CRL check gives the same value or the same typed error, word for
word, with the walk as without it. On every real CRL in tests/data, on simulated CRLs with revoked
entries, on damaged CRLs (bytes replaced, cut, inserted, length bytes made long-form) and on
hand-built edge cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence import dcap, x509_der
from floodlight_trust.evidence.x509_input import crl_from_der
from floodlight_trust.sgxsim.certificates import crl as simulated_crl
from tests.evidence.sgx.test_dcap_der import CRLS
from tests.support.requires import missing

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _native() -> Any:
    try:
        from floodlight_trust.evidence import _derwalk
    except ImportError:
        missing("the native _derwalk module is not built in this environment (make setup builds it)")
    return _derwalk


def _tlv(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + contents


def _issuer(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).issuer.public_bytes()


class _Ca:
    """A CA key and certificate, to sign hand-built CRLs (the signature then holds, so the
    verifier's outcome is decided by the CRL's form)."""

    def __init__(self, common_name: str = "CRL walk test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(7)
            .not_valid_before(T0 - timedelta(days=1))
            .not_valid_after(T0 + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.subject = name.public_bytes()

    def sign(self, tbs_contents: bytes, algorithm: bytes = b"", outer: bytes | None = None) -> bytes:
        """A CRL of ``tbs_contents`` (the tbsCertList's elements), signed with ECDSA-SHA256."""
        tbs = _tlv(0x30, tbs_contents)
        signature = self.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        alg = outer if outer is not None else (algorithm or ECDSA_SHA256)
        return _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + signature))

    def tbs(
        self,
        *,
        version: bytes = b"\x02\x01\x01",
        algorithm: bytes | None = None,
        this: bytes | None = None,
        next_: bytes | None = None,
        revoked: bytes = b"",
        extensions: bytes | None = None,
    ) -> bytes:
        ext = _crl_number(5) + _aki(b"\x01" * 20) if extensions is None else extensions
        return (
            version
            + (ECDSA_SHA256 if algorithm is None else algorithm)
            + self.subject
            + (_tlv(0x17, b"250601000000Z") if this is None else this)
            + (_tlv(0x17, b"260601000000Z") if next_ is None else next_)
            + revoked
            + (_tlv(0xA0, _tlv(0x30, ext)) if ext else b"")
        )


ECDSA_SHA256 = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d040302")))
ECDSA_SHA384 = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d040303")))


def _extension(oid: bytes, value: bytes, critical: bytes = b"") -> bytes:
    return _tlv(0x30, _tlv(0x06, oid) + critical + _tlv(0x04, value))


def _crl_number(n: int) -> bytes:
    return _extension(b"\x55\x1d\x14", _tlv(0x02, n.to_bytes((n.bit_length() + 8) // 8, "big")))


def _aki(key_id: bytes) -> bytes:
    return _extension(b"\x55\x1d\x23", _tlv(0x30, _tlv(0x80, key_id)))


def _entry(serial: bytes, when: bytes = b"250501000000Z", extra: bytes = b"") -> bytes:
    return _tlv(0x30, _tlv(0x02, serial) + _tlv(0x17, when) + extra)


CA = _Ca()


def _cryptography_reading(der: bytes) -> tuple[object, ...] | None:
    """What cryptography's full parse reads of the CRL (crl_from_der's parse), or None if it refuses it."""
    try:
        crl = crl_from_der(der, "CRL")
    except FtrustError:
        return None
    return (
        crl.tbs_certlist_bytes,
        crl.signature_algorithm_oid,
        crl.signature,
        crl.last_update_utc,
        crl.next_update_utc,
        frozenset(r.serial_number for r in crl),
        crl.issuer.public_bytes(),
    )


def _walk_agrees(der: bytes, issuer: bytes) -> x509_der.CrlFields | None:
    """The native walk and its reference agree, and what they read cryptography reads."""
    walk = _native()
    native = walk.crl_fields(der, issuer)
    assert native == x509_der.crl_fields_py(der, issuer)
    if native is None:
        return None
    fields = x509_der.CrlFields(*native)
    expected = _cryptography_reading(der)
    assert expected is not None, "the walk read a CRL cryptography refuses"
    assert (
        fields.tbs,
        dcap._SIGNATURE_OID_BY_DER[fields.algorithm],
        fields.signature,
        fields.this_update,
        fields.next_update,
        fields.revoked,
        issuer,
    ) == expected
    return fields


def _check_outcome(check: Callable[..., object], der: bytes, issuer: x509.Certificate, subject: bytes) -> object:
    try:
        return "value", check(der, issuer, subject, "the CRL")
    except FtrustError as e:
        return "error", type(e).__name__, e.message, e.hint
    except Exception as e:
        return "raised", type(e).__name__, str(e)


def _verifier_agrees(der: bytes, issuer: x509.Certificate, subject: bytes) -> object:
    """The verifier's CRL check gives the same value or the same typed error with the walk
    (dcap._crl) as with cryptography's parse alone (dcap._crl_parsed, the check before the walk)."""
    outcome = _check_outcome(dcap._crl, der, issuer, subject)
    assert outcome == _check_outcome(dcap._crl_parsed, der, issuer, subject)
    return outcome


@pytest.mark.parametrize("der", CRLS, ids=range(len(CRLS)))
def test_real_crls_are_read_by_the_walk_as_cryptography_reads_them(der: bytes) -> None:
    fields = _walk_agrees(der, _issuer(der))
    assert fields is not None and fields.revoked == frozenset()


def test_the_phala_crls_pass_the_verifier_through_the_walk() -> None:
    from floodlight_trust.clients.collateral_files import load_collateral
    from tests.evidence.sgx.test_dcap_der import PHALA

    c = load_collateral(PHALA / "sgx_quote_collateral.json")
    anchor = dcap.TrustAnchor.intel()
    assert anchor.subject_der is not None
    assert x509_der.crl_fields(c.root_ca_crl, anchor.subject_der) is not None
    outcome = _verifier_agrees(c.root_ca_crl, anchor.certificate, anchor.subject_der)
    assert outcome[0] == "value"


@pytest.mark.parametrize("revoked", [[], [1], [0x7F, 0x80, 0xFF, 2**158 + 5, 1 << 152]])
def test_simulated_crls_with_revoked_entries_walk_as_cryptography_reads_them(revoked: list[int]) -> None:
    der = simulated_crl(CA.key, CA.cert, T0, T0 + timedelta(days=30), revoked)
    fields = _walk_agrees(der, CA.subject)
    assert fields is not None and fields.revoked == frozenset(revoked)
    assert _verifier_agrees(der, CA.cert, CA.subject) == (
        "value",
        (frozenset(revoked), dcap._Window("the CRL", T0, T0 + timedelta(days=30))),
    )


def _damaged(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` with a byte replaced, a span cut, bytes inserted, cut short, or a byte made a long-form length."""
    at = st.integers(0, max(len(raw) - 1, 0))
    return st.one_of(
        st.builds(lambda i, b: raw[:i] + bytes([b]) + raw[i + 1 :], at, st.integers(0, 255)),
        st.builds(lambda i, n: raw[:i] + raw[i + n :], at, st.integers(1, 40)),
        st.builds(lambda i, b: raw[:i] + b + raw[i:], at, st.binary(min_size=1, max_size=6)),
        st.builds(lambda i: raw[:i], at),
        st.builds(lambda i, n: raw[:i] + bytes([0x80 | n]) + raw[i + 1 :], at, st.integers(0, 5)),
        st.builds(  # a length byte written in long form (the same length, not DER's shortest form)
            lambda i: raw[:i] + bytes([0x81, raw[i]]) + raw[i + 1 :] if i < len(raw) else raw, at
        ),
    )


SIMULATED = simulated_crl(CA.key, CA.cert, T0, T0 + timedelta(days=30), [3, 0x1234, 2**100])


@FUZZ
@given(data=st.data(), index=st.integers(0, len(CRLS)))
def test_damaged_crls_walk_as_cryptography_reads_them(data: st.DataObject, index: int) -> None:
    raw = SIMULATED if index == len(CRLS) else CRLS[index]
    issuer = CA.subject if index == len(CRLS) else _issuer(raw)
    _walk_agrees(data.draw(_damaged(raw)), issuer)


@FUZZ
@given(data=st.data())
def test_damaged_signed_crls_meet_the_same_outcome_with_and_without_the_walk(data: st.DataObject) -> None:
    """Damage to a CRL whose signature is re-made over the damaged tbsCertList (so the outcome is
    the form's, not a failed signature), and damage to the whole signed CRL."""
    if data.draw(st.booleans()):
        tbs = CA.tbs(revoked=_tlv(0x30, _entry(b"\x05") + _entry(b"\x00\x80")))
        der = CA.sign(data.draw(_damaged(tbs)))
    else:
        der = data.draw(_damaged(SIMULATED))
    _walk_agrees(der, CA.subject)
    _verifier_agrees(der, CA.cert, CA.subject)


ENTRIES = _tlv(0x30, _entry(b"\x05"))


@pytest.mark.parametrize(
    "tbs,read",
    [
        pytest.param(CA.tbs(), True, id="built"),
        pytest.param(CA.tbs(revoked=ENTRIES), True, id="one-entry"),
        pytest.param(CA.tbs(extensions=b""), True, id="no-extensions"),
        pytest.param(CA.tbs(extensions=_crl_number(1)), True, id="crl-number-only"),
        pytest.param(CA.tbs(extensions=_aki(b"\x02")), True, id="aki-only"),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\x01"), b"\x01\x01\xff")),
            True,
            id="crl-number-critical",
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\x01"), b"\x01\x01\x00")),
            False,
            id="critical-false-written",
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\x01"), b"\x01\x01\x01")),
            False,
            id="critical-not-ff",
        ),
        pytest.param(CA.tbs(extensions=_crl_number(1) * 2), False, id="crl-number-twice"),
        pytest.param(CA.tbs(extensions=_aki(b"\x01") * 2), False, id="aki-twice"),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\xff"))), False, id="crl-number-negative"
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\x00\x01"))), False, id="crl-number-not-shortest"
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x04, b"\x01"))), False, id="crl-number-not-integer"
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x14", _tlv(0x02, b"\x01") + b"\x00")),
            False,
            id="crl-number-trailing",
        ),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x23", _tlv(0x30, _tlv(0x80, b"\x01") + _tlv(0xA2, b"\x01")))),
            False,
            id="aki-with-serial",
        ),
        pytest.param(CA.tbs(extensions=_extension(b"\x55\x1d\x23", _tlv(0x30, b""))), False, id="aki-empty"),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x55\x1d\x1c", _tlv(0x30, b""), b"\x01\x01\xff")), False, id="idp-critical"
        ),
        pytest.param(CA.tbs(extensions=_extension(b"\x55\x1d\x2e", _tlv(0x30, b""))), False, id="unknown"),
        pytest.param(
            CA.tbs(extensions=_extension(b"\x2a\x03", _tlv(0x05, b""), b"\x01\x01\xff")), False, id="unknown-critical"
        ),
        pytest.param(CA.tbs(version=b""), False, id="no-version"),
        pytest.param(CA.tbs(version=b"\x02\x01\x00"), False, id="v1"),
        pytest.param(CA.tbs(version=b"\x02\x01\x02"), False, id="v3"),
        pytest.param(CA.tbs(algorithm=ECDSA_SHA384), False, id="inner-algorithm-differs"),
        pytest.param(
            CA.tbs(algorithm=_tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")), False, id="rsa"
        ),
        pytest.param(CA.tbs(next_=b""), False, id="no-next-update"),
        pytest.param(CA.tbs(next_=b"", extensions=b""), False, id="no-next-update-nor-extensions"),
        pytest.param(CA.tbs(this=_tlv(0x18, b"20250601000000Z")), False, id="generalized-time"),
        pytest.param(CA.tbs(this=_tlv(0x17, b"250230000000Z")), False, id="february-30"),
        pytest.param(CA.tbs(this=_tlv(0x17, b"2506010000Z")), False, id="no-seconds"),
        pytest.param(CA.tbs(this=_tlv(0x17, b"250601000000+0100")), False, id="offset"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, b"")), False, id="empty-revoked-list"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, _entry(b"\xff"))), False, id="negative-serial"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, _entry(b"\x00"))), False, id="serial-zero"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, _entry(b"\x00\x05"))), False, id="serial-not-shortest"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, _entry(b""))), False, id="empty-serial"),
        pytest.param(CA.tbs(revoked=_tlv(0x30, _entry(b"\x05", b"251301000000Z"))), False, id="revoked-month-13"),
        pytest.param(
            CA.tbs(
                revoked=_tlv(0x30, _entry(b"\x05", extra=_tlv(0x30, _extension(b"\x55\x1d\x15", _tlv(0x0A, b"\x01")))))
            ),
            False,
            id="entry-extensions",
        ),
        pytest.param(CA.tbs() + b"\x05\x00", False, id="after-the-extensions"),
        pytest.param(CA.tbs(extensions=b"") + b"\x05\x00", False, id="null-at-the-end"),
    ],
)
def test_built_crls_walk_as_cryptography_reads_them(tbs: bytes, read: bool) -> None:
    der = CA.sign(tbs)
    assert (_walk_agrees(der, CA.subject) is not None) is read
    _verifier_agrees(der, CA.cert, CA.subject)


def _long_form(der: bytes) -> bytes:
    """``der`` with its outer length written with one more length byte than needed."""
    assert der[1] == 0x81
    return der[:1] + b"\x82\x00" + der[2:]


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(_long_form(CA.sign(CA.tbs())), id="outer-length-not-shortest"),
        pytest.param(CA.sign(CA.tbs())[:-1], id="cut"),
        pytest.param(CA.sign(CA.tbs()) + b"\x00", id="trailing-byte"),
        pytest.param(CA.sign(CA.tbs(), outer=ECDSA_SHA384), id="outer-algorithm-differs"),
    ],
)
def test_built_crl_envelopes_walk_as_cryptography_reads_them(der: bytes) -> None:
    _walk_agrees(der, CA.subject)
    _verifier_agrees(der, CA.cert, CA.subject)


def test_a_short_length_written_long_is_not_read() -> None:
    """0x81 0x05 is not DER (a length below 128 has one byte): cryptography refuses it, and the walk
    leaves it to cryptography."""
    tbs = CA.tbs(extensions=_crl_number(1))
    at = tbs.index(bytes.fromhex("0603551d14"))
    der = CA.sign(tbs[:at] + b"\x06\x81\x03" + tbs[at + 2 :])
    assert _walk_agrees(der, CA.subject) is None
    assert _verifier_agrees(der, CA.cert, CA.subject)[1] == "ParseError"


def test_an_unused_bit_in_the_signature_is_not_read() -> None:
    der = CA.sign(CA.tbs())
    bits = der.rindex(b"\x03", 0, len(der) - 64)
    damaged = der[: bits + 2] + b"\x01" + der[bits + 3 :]
    assert _walk_agrees(damaged, CA.subject) is None
    _verifier_agrees(damaged, CA.cert, CA.subject)


def test_another_issuer_is_not_read_and_is_refused_as_before() -> None:
    other = _Ca("another CA")
    der = other.sign(other.tbs())
    assert _walk_agrees(der, CA.subject) is None
    assert _verifier_agrees(der, CA.cert, CA.subject)[1] == "CrlIssuerError"


def test_a_bad_signature_is_refused_through_the_walk() -> None:
    der = bytearray(CA.sign(CA.tbs()))
    der[-5] ^= 1
    assert _walk_agrees(bytes(der), CA.subject) is not None
    assert _verifier_agrees(bytes(der), CA.cert, CA.subject)[1] == "CollateralSignatureError"


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_walk_as_the_reference(raw: bytes) -> None:
    _walk_agrees(raw, CA.subject)


def test_the_verifier_uses_the_reference_when_the_walk_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    _native()
    der = simulated_crl(CA.key, CA.cert, T0, T0 + timedelta(days=30), [9])
    native = _check_outcome(dcap._crl, der, CA.cert, CA.subject)
    monkeypatch.setattr(x509_der, "_crl_fields", x509_der.crl_fields_py)
    assert _check_outcome(dcap._crl, der, CA.cert, CA.subject) == native
    assert native[0] == "value"
