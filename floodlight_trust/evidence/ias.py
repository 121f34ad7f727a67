"""Intel Attestation Service (EPID): report verification (pure; the API client is :mod:`floodlight_trust.clients.ias`).

:func:`verify_report` checks the X-IASReport-Signature (RSA PKCS#1 v1.5, SHA-256) over the exact body
bytes by the X-IASReport-Signing-Certificate, that certificate's issuance by the pinned Attestation
Report Signing CA, the nonce, the quote body, the report age, and maps ``isvEnclaveQuoteStatus`` to
the TCB status names DCAP uses, so one enclave policy covers both kinds of evidence.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from floodlight_trust.claims import EnclaveClaims, EvidenceType, PlatformIdentity, TcbStatus
from floodlight_trust.errors import ParseError, VerificationError
from floodlight_trust.evidence.sgx_quote import SIGNED_SIZE, EpidQuote, enclave_claims, parse_quote
from floodlight_trust.evidence.x509_input import certificate_from_der, certificates_from_pem

# isvEnclaveQuoteStatus -> the DCAP status name. Statuses absent here mean the quote was rejected.
STATUS_MAP: dict[str, TcbStatus] = {
    "OK": TcbStatus.UP_TO_DATE,
    "SW_HARDENING_NEEDED": TcbStatus.SW_HARDENING_NEEDED,
    "CONFIGURATION_NEEDED": TcbStatus.CONFIGURATION_NEEDED,
    "CONFIGURATION_AND_SW_HARDENING_NEEDED": TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED,
    "GROUP_OUT_OF_DATE": TcbStatus.OUT_OF_DATE,
    "GROUP_REVOKED": TcbStatus.REVOKED,
    "KEY_REVOKED": TcbStatus.REVOKED,
}
REJECTED = ("SIGNATURE_INVALID", "SIGNATURE_REVOKED", "SIGRL_VERSION_MISMATCH")


class IasError(VerificationError):
    """An IAS attestation verification report did not verify."""


class IasSignatureError(IasError):
    """The report signature or its signing certificate is not valid."""


class IasBindingError(IasError):
    """The report is not about the submitted quote, or not an answer to the nonce sent."""


class IasReportTooOld(IasError):
    """The report is older than the allowed maximum (or dated after the verification time)."""


class IasQuoteRejected(IasError):
    """IAS judged the quote invalid (bad or revoked EPID signature)."""


@dataclass(frozen=True, slots=True)
class IasReport:
    id: str
    timestamp: datetime
    version: int
    status: str
    advisory_ids: tuple[str, ...]
    nonce: str | None
    epid_pseudonym: str | None
    platform_info_blob: str | None
    quote_body: bytes


@dataclass(frozen=True, slots=True)
class IasResult:
    claims: EnclaveClaims
    report: IasReport
    quote: EpidQuote
    warnings: tuple[str, ...]


def report_signing_ca() -> bytes:
    """The Intel SGX Attestation Report Signing CA shipped with floodlight-trust (DER)."""
    return resources.files("floodlight_trust.evidence").joinpath("data/intel_ias_report_signing_ca.der").read_bytes()


def _certs(data: bytes, what: str) -> list[x509.Certificate]:
    # DER is binary: its last byte may be 0x20 or 0x0a, so only text forms (PEM, the URL-encoded
    # header) are stripped. A DER certificate starts with a SEQUENCE tag.
    if data[:1] == b"\x30":
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError as e:
            raise ParseError(f"{what} is not a valid certificate: {e}") from None
    text = data.strip()
    if b"%20" in text or b"%0A" in text:
        text = urllib.parse.unquote_to_bytes(text)  # the header form is URL-encoded PEM
    if b"-----BEGIN CERTIFICATE-----" in text:
        return certificates_from_pem(text, what)
    return [certificate_from_der(text, what)]


def parse_report(body: bytes) -> IasReport:
    """Decode an IAS attestation verification report body (API v3-v5)."""
    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ParseError(f"IAS report is not valid JSON: {str(e)[:160]}") from None
    if not isinstance(d, dict):
        raise ParseError("IAS report is not a JSON object")
    for key in ("id", "timestamp", "isvEnclaveQuoteStatus", "isvEnclaveQuoteBody"):
        if not isinstance(d.get(key), str):
            raise ParseError(f"IAS report lacks {key!r}")
    try:
        ts = datetime.fromisoformat(d["timestamp"].replace("Z", ""))
    except ValueError:
        raise ParseError(f"IAS report timestamp {d['timestamp']!r} is not ISO 8601") from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    try:
        quote_body = base64.b64decode(d["isvEnclaveQuoteBody"], validate=True)
    except (binascii.Error, ValueError):
        raise ParseError("IAS report isvEnclaveQuoteBody is not base64") from None
    version = d.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ParseError(f"IAS report version is not an integer: {str(version)[:40]!r}")
    advisories = d.get("advisoryIDs") or ()
    if not isinstance(advisories, list | tuple) or not all(isinstance(x, str) for x in advisories):
        raise ParseError("IAS report advisoryIDs is not a list of strings")
    for key in ("nonce", "epidPseudonym", "platformInfoBlob"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise ParseError(f"IAS report {key} is not a string")
    return IasReport(
        id=d["id"],
        timestamp=ts,
        version=version,
        status=d["isvEnclaveQuoteStatus"],
        advisory_ids=tuple(advisories),
        nonce=d.get("nonce"),
        epid_pseudonym=d.get("epidPseudonym"),
        platform_info_blob=d.get("platformInfoBlob"),
        quote_body=quote_body,
    )


def verify_report(
    body: bytes,
    signature_b64: bytes,
    signing_cert_pem: bytes,
    anchor_der: bytes,
    *,
    at: datetime,
    nonce: str | None = None,
    quote: bytes | None = None,
    max_age: timedelta | None = None,
) -> IasResult:
    """Verify an IAS report (exact body bytes + its two headers) against the pinned signing CA at ``at``."""
    anchor = _certs(anchor_der, "IAS trust anchor")[0]
    chain = _certs(signing_cert_pem, "IAS report signing certificate")
    signer = chain[0]
    try:
        signer.verify_directly_issued_by(anchor)
    except (ValueError, TypeError, InvalidSignature):
        raise IasSignatureError(
            f"the report signing certificate ({signer.subject.rfc4514_string()}) is not issued by "
            f"the pinned {anchor.subject.rfc4514_string()}"
        ) from None
    for cert, what in ((signer, "IAS report signing certificate"), (anchor, "IAS root CA")):
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise IasSignatureError(
                f"{what} is not valid at {at:%Y-%m-%dT%H:%M:%SZ} "
                f"(valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
            )
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ParseError("X-IASReport-Signature is not base64") from None
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise IasSignatureError("the report signing certificate does not have an RSA key")
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise IasSignatureError("X-IASReport-Signature is not a valid signature over the report body") from None

    report = parse_report(body)
    if nonce is not None and report.nonce != nonce:
        raise IasBindingError(f"report nonce {report.nonce!r} is not the nonce sent ({nonce!r})")
    if len(report.quote_body) != SIGNED_SIZE:
        raise ParseError(f"IAS report quote body is {len(report.quote_body)} bytes, expected {SIGNED_SIZE}")
    body_quote = parse_quote(report.quote_body)
    if not isinstance(body_quote, EpidQuote):
        raise ParseError("IAS report quote body is not an EPID quote")
    if quote is not None and quote[:SIGNED_SIZE] != report.quote_body:
        raise IasBindingError("the quote in the report is not the quote submitted")
    if report.timestamp > at + timedelta(minutes=5):
        raise IasReportTooOld(f"report is dated {report.timestamp:%Y-%m-%dT%H:%M:%SZ}, after the verification time")
    if max_age is not None and at - report.timestamp > max_age:
        raise IasReportTooOld(
            f"report from {report.timestamp:%Y-%m-%dT%H:%M:%SZ} is older than the allowed {max_age} at {at:%Y-%m-%dT%H:%M:%SZ}"
        )
    status = STATUS_MAP.get(report.status)
    if status is None:
        raise IasQuoteRejected(f"IAS rejected the quote: isvEnclaveQuoteStatus {report.status}")
    claims = enclave_claims(
        body_quote.report,
        evidence_type=EvidenceType.IAS,
        tcb_status=status,
        advisory_ids=report.advisory_ids,
        qe_identity_status=None,
        collateral_issued_at=report.timestamp,
        platform=PlatformIdentity(
            epid_group_id=body_quote.epid_group_id[::-1].hex(),  # shown big-endian, as Intel writes GIDs
            epid_pseudonym=report.epid_pseudonym,
        ),
    )
    return IasResult(claims, report, body_quote, ())
