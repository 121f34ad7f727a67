"""Frozen dataclasses built in one native call (floodlight_trust/evidence/frozen.py, _frozen.c) are
what the class's own construction gives: the same type, fields, equality, hash and repr, still
frozen; for every class a cold DCAP verification builds that way, on the values of a real
verification. The call sites pass the fields in order (checked against construction by keyword),
and the verifier gives the same result with the classes themselves (the reference)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from floodlight_trust.claims import EnclaveClaims, PlatformIdentity
from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.clock import parse_time
from floodlight_trust.evidence import collateral, dcap, frozen, sgx_quote
from floodlight_trust.evidence.frozen import builder, fields_of
from tests.evidence.sgx.test_dcap_der import PHALA
from tests.support.requires import missing

AT = parse_time("2025-06-20T00:00:00Z")
QUOTE = (PHALA / "sgx_quote").read_bytes()
COLLATERAL = load_collateral(PHALA / "sgx_quote_collateral.json")


def _native() -> None:
    if not frozen.NATIVE:
        missing("the native _frozen module is not built in this environment (make setup builds it)")


def _verified() -> dict[type, Any]:
    """One instance of every class the verifier builds with a builder, from a real cold verification."""
    dcap.clear_cache()
    anchor = dcap.TrustAnchor.intel()
    result = dcap.verify_quote(QUOTE, COLLATERAL, anchor, at=AT)
    [vc] = dcap._cache.values()
    [pck] = dcap._pck_cache.values()
    [signers] = dcap._signers_cache.values()
    objects = [
        result,
        result.claims,
        result.claims.platform,
        result.quote,
        result.quote.report,
        result.quote.qe_report,
        result.pck,
        vc,
        vc.tcb,
        vc.qe,
        pck,
        signers,
        signers.tcb[0],
    ]
    dcap.clear_cache()
    return {type(o): o for o in objects}


VERIFIED = _verified()
CLASSES = [
    dcap.DcapResult,
    EnclaveClaims,
    PlatformIdentity,
    sgx_quote.QuoteV3,
    sgx_quote.ReportBody,
    sgx_quote.PckExtensions,
    dcap._VerifiedCollateral,
    collateral.TcbInfo,
    collateral.QeIdentity,
    dcap._Pck,
    dcap._CollateralSigners,
    dcap._Cert,
]


def test_every_class_is_built_natively() -> None:
    _native()
    assert set(VERIFIED) == set(CLASSES)
    assert all(frozen.eligible(cls) and builder(cls) is not cls for cls in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_built_instance_is_the_class_own(cls: type) -> None:
    _native()
    value = VERIFIED[cls]
    values = fields_of(value)
    built, own = builder(cls)(*values), cls(*values)
    assert type(built) is cls and built == own == value and repr(built) == repr(own)
    assert fields_of(built) == values and all(a is b for a, b in zip(fields_of(built), values, strict=True))
    try:
        hashes = hash(own)
    except TypeError:  # a field is a list or a set: unhashable either way
        with pytest.raises(TypeError):
            hash(built)
    else:
        assert hash(built) == hashes
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, first, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(built, first)
    assert dataclasses.replace(built) == own


def test_a_builder_takes_every_field_positionally() -> None:
    _native()
    build = builder(PlatformIdentity)
    with pytest.raises(TypeError, match="takes 5 values, 3 given"):
        build("a", "b", "c")
    with pytest.raises(TypeError, match="positional values only"):
        build(*fields_of(PlatformIdentity()), fmspc="00")


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True, slots=True)
class _Derived:
    value: int
    double: int = dataclasses.field(init=False)


@dataclasses.dataclass(frozen=True)
class _NoSlots:
    value: int


@dataclasses.dataclass(slots=True)
class _Mutable:
    value: int


@pytest.mark.parametrize("cls", [_Checked, _Derived, _NoSlots, _Mutable, int], ids=lambda c: c.__name__)
def test_a_class_whose_init_does_more_is_built_by_itself(cls: type) -> None:
    assert not frozen.eligible(cls) and builder(cls) is cls


def test_a_builder_refuses_a_name_that_is_not_a_slot() -> None:
    _native()
    from floodlight_trust.evidence import _frozen

    with pytest.raises(TypeError, match="is not a slot"):
        _frozen.Builder(PlatformIdentity, ("fmspc", "nonsense"))
    with pytest.raises(TypeError, match="is not a slot"):
        _frozen.Builder(_NoSlots, ("value",))


def test_the_call_sites_pass_the_fields_in_order() -> None:
    """What the verifier built positionally is what construction by keyword gives (the order of
    the fields is the only thing a builder's caller can get wrong)."""
    result = VERIFIED[dcap.DcapResult]
    q, report = result.quote, result.quote.report
    pos = 48 + 384 + 4
    assert q == sgx_quote.QuoteV3(
        raw=QUOTE,
        version=3,
        att_key_type=2,
        qe_svn=int.from_bytes(QUOTE[8:10], "little"),
        pce_svn=int.from_bytes(QUOTE[10:12], "little"),
        qe_vendor_id=QUOTE[12:28],
        user_data=QUOTE[28:48],
        report=report,
        signature=QUOTE[pos : pos + 64],
        attestation_key=QUOTE[pos + 64 : pos + 128],
        qe_report_raw=QUOTE[pos + 128 : pos + 512],
        qe_report=q.qe_report,
        qe_report_signature=QUOTE[pos + 512 : pos + 576],
        qe_auth_data=q.qe_auth_data,
        cert_data_type=5,
        cert_data=q.cert_data,
    )
    assert q.cert_data.startswith(b"-----BEGIN CERTIFICATE-----") and len(q.qe_auth_data) == int.from_bytes(
        QUOTE[pos + 576 : pos + 578], "little"
    )
    assert report.mr_enclave == QUOTE[48 + 64 : 48 + 96] and report.report_data == QUOTE[48 + 320 : 48 + 384]
    claims = result.claims
    assert claims == EnclaveClaims(
        evidence_type=claims.evidence_type,
        mrenclave=report.mr_enclave.hex(),
        mrsigner=report.mr_signer.hex(),
        isv_prod_id=report.isv_prod_id,
        isv_svn=report.isv_svn,
        debug=report.debug,
        mode64bit=report.mode64bit,
        attributes=report.attributes.hex(),
        misc_select=report.misc_select,
        config_svn=report.config_svn,
        config_id=report.config_id.hex(),
        isv_ext_prod_id=report.isv_ext_prod_id.hex(),
        isv_family_id=report.isv_family_id.hex(),
        report_data=report.report_data.hex(),
        tcb_status=claims.tcb_status,
        advisory_ids=claims.advisory_ids,
        qe_identity_status=claims.qe_identity_status,
        collateral_issued_at=VERIFIED[collateral.TcbInfo].issue_date,
        platform=PlatformIdentity(
            fmspc=result.pck.fmspc.hex(),
            pce_id=result.pck.pce_id.hex(),
            pck_certificate_sha256=claims.platform.pck_certificate_sha256,
        ),
        simulated=False,
    )
    assert claims.platform.fmspc == json.loads(COLLATERAL.tcb_info)["fmspc"].lower()
    assert claims.tcb_status.value == "ConfigurationAndSWHardeningNeeded"
    tcb, qe = json.loads(COLLATERAL.tcb_info), json.loads(COLLATERAL.qe_identity)
    assert VERIFIED[collateral.TcbInfo] == collateral.TcbInfo(
        version=tcb["version"],
        issue_date=parse_time(tcb["issueDate"]),
        next_update=parse_time(tcb["nextUpdate"]),
        fmspc=bytes.fromhex(tcb["fmspc"]),
        pce_id=bytes.fromhex(tcb["pceId"]),
        levels=VERIFIED[collateral.TcbInfo].levels,
    )
    assert VERIFIED[collateral.QeIdentity] == collateral.QeIdentity(
        id=qe["id"],
        issue_date=parse_time(qe["issueDate"]),
        next_update=parse_time(qe["nextUpdate"]),
        misc_select=int(qe["miscselect"], 16),
        misc_select_mask=int(qe["miscselectMask"], 16),
        attributes=bytes.fromhex(qe["attributes"]),
        attributes_mask=bytes.fromhex(qe["attributesMask"]),
        mr_signer=bytes.fromhex(qe["mrsigner"]),
        isv_prod_id=qe["isvprodid"],
        levels=VERIFIED[collateral.QeIdentity].levels,
    )
    vc, pck = VERIFIED[dcap._VerifiedCollateral], VERIFIED[dcap._Pck]
    assert vc.valid_from == max(w.not_before for w in vc.windows + vc.crl_windows)
    assert vc.valid_until == min(w.not_after for w in vc.windows + vc.crl_windows)
    assert pck.window.what == "PCK certificate" and pck.serial_number == pck.cert.serial_number
    assert pck.sha256 == hashlib.sha256(pck.cert.public_bytes(Encoding.DER)).hexdigest()
    assert pck.ext == result.pck and pck.key_spki == pck.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


BUILDERS = {
    sgx_quote: {
        "_new_report_body": sgx_quote.ReportBody,
        "_new_claims": EnclaveClaims,
        "_new_quote": sgx_quote.QuoteV3,
        "_new_pck_extensions": sgx_quote.PckExtensions,
    },
    collateral: {"_new_tcb_info": collateral.TcbInfo, "_new_qe_identity": collateral.QeIdentity},
    dcap: {
        "_new_verified": dcap._VerifiedCollateral,
        "_new_cert": dcap._Cert,
        "_new_signers": dcap._CollateralSigners,
        "_new_pck": dcap._Pck,
        "_new_platform": PlatformIdentity,
        "_new_result": dcap.DcapResult,
    },
}


def test_the_verifier_gives_the_same_result_with_the_classes_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without the native module builds every object with its class, to the same result."""
    native = VERIFIED[dcap.DcapResult]
    for module, builders in BUILDERS.items():
        assert {n for n in vars(module) if n.startswith("_new_")} == set(builders)
        for name, cls in builders.items():
            monkeypatch.setattr(module, name, cls)
    dcap.clear_cache()
    try:
        reference = dcap.verify_quote(QUOTE, COLLATERAL, dcap.TrustAnchor.intel(), at=AT)
    finally:
        dcap.clear_cache()
    assert reference == native and type(reference.claims) is EnclaveClaims
