"""DCAP quote verification, in the order and with the status names of Intel's QVL.

``verify_quote(quote, collateral, anchor, at=...)`` is pure: bytes, a pinned trust anchor and a time
in; :class:`DcapResult` with :class:`~floodlight_trust.claims.EnclaveClaims` out, or a
:class:`DcapError` subclass naming the check that failed. Collateral is verified once and cached
by content hash (and anchor) for its validity window, so a quote then costs only its own chain and
signatures; a PCK certificate whose chain, and a QE report whose PCK signature, passed are remembered
by every byte (and key) that decided them, so a platform's next quote costs its quote signature. The
caches are bounded, value-keyed memos (no I/O) that never keep a failure; ``clear_cache`` empties them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from operator import ge as _ge
from typing import NamedTuple

import pybase64
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from floodlight_trust.claims import EnclaveClaims, EvidenceType, PlatformIdentity, TcbStatus
from floodlight_trust.errors import InternalError, ParseError, VerificationError
from floodlight_trust.evidence.collateral import (
    Collateral,
    QeIdentity,
    TcbInfo,
    collateral_from_json,
    collateral_to_json,
    parse_qe_identity,
    parse_tcb_info,
)
from floodlight_trust.evidence.der import DerError
from floodlight_trust.evidence.der import tlv as der_tlv
from floodlight_trust.evidence.frozen import builder
from floodlight_trust.evidence.sgx_quote import (
    SGX_EXTENSIONS_OID,
    EpidQuote,
    PckExtensions,
    QuoteV3,
    enclave_claims,
    oid_der,
    parse_pck_extensions,
    parse_quote,
    split_pem,
)
from floodlight_trust.evidence.x509_der import (
    CertificateFields,
    ExtensionProfile,
    Layout,
    certificate_fields,
    crl_fields,
    extension_profile,
)
from floodlight_trust.evidence.x509_der import layout as der_layout
from floodlight_trust.evidence.x509_input import crl_from_der, subject_text, touch_certificate

__all__ = [
    "Collateral",
    "DcapResult",
    "TrustAnchor",
    "collateral_from_json",
    "collateral_to_json",
    "verify_quote",
]

log = logging.getLogger(__name__)
_simulated_roots_seen: set[str] = set()  # warn once per simulated root and process, not per use

INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
_SGX_EXT = x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
_SGX_EXT_DER = oid_der(SGX_EXTENSIONS_OID)
_ECDSA = ec.ECDSA(hashes.SHA256())


# ---------------------------------------------------------------------------------------------
# Failures, each naming the check.


class DcapError(VerificationError):
    """A DCAP quote did not verify."""


class CertificateChainError(DcapError):
    """The PCK or TCB signing chain does not lead to the pinned root, or a certificate is not valid."""


class QeReportSignatureError(DcapError):
    """The QE report is not signed by the PCK certificate's key."""


class QeReportDataMismatch(DcapError):
    """The QE report does not bind the attestation key and QE authentication data."""


class QuoteSignatureError(DcapError):
    """The quote (header + ISV report body) is not signed by the attestation key."""


class CollateralSignatureError(DcapError):
    """TCB info, QE identity or a CRL is not signed by its issuer."""


class CollateralExpired(DcapError):
    """A piece of collateral (or a certificate) is expired or not yet valid at the verification time."""


class CrlIssuerError(DcapError):
    """A CRL is not issued by the CA it is supposed to cover."""


class CertificateRevoked(DcapError):
    """A certificate of a chain is revoked by its issuer's CRL (the root itself, a TCB signing
    certificate or, as :class:`PckRevoked`, the PCK certificate or its CA)."""


class PckRevoked(CertificateRevoked):
    """The PCK certificate or its CA is revoked."""


class CertificateProfileError(DcapError):
    """A certificate is used against its profile, as a path validator (webpki, under dcap-qvl)
    refuses it: an end entity acting as a CA or the reverse (basicConstraints), a CRL signed by a
    CA whose key usage excludes CRL signing, an extended key usage without serverAuth, or a
    critical extension the verifier does not know."""


class TcbLevelNotFound(DcapError):
    """No TCB level of the TCB info matches the platform (or the TCB info is for another FMSPC)."""


class QeIdentityMismatch(DcapError):
    """The quoting enclave is not the one the QE identity describes, or its TCB is unknown."""


class UnsupportedEvidence(DcapError):
    """The evidence is not a DCAP quote (an EPID quote goes to IAS)."""


# ---------------------------------------------------------------------------------------------
# Trust anchors.


@dataclass(frozen=True, eq=False)
class TrustAnchor:
    """A pinned root CA for DCAP. Build with :meth:`intel` or, for the simulator, :meth:`unsafe_simulated`."""

    certificate: x509.Certificate
    name: str
    simulated: bool = False
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def intel(cls) -> TrustAnchor:
        """The Intel SGX Root CA shipped with floodlight-trust, checked against its pinned fingerprint."""
        der = resources.files("floodlight_trust.evidence").joinpath("data/intel_sgx_root_ca.der").read_bytes()
        digest = hashlib.sha256(der).hexdigest()
        if digest != INTEL_ROOT_SHA256:
            raise InternalError(f"the embedded Intel SGX Root CA has fingerprint {digest}, not the pinned one")
        return cls(x509.load_der_x509_certificate(der), "Intel SGX Root CA", False, digest)

    @classmethod
    def unsafe_simulated(cls, certificate: x509.Certificate | bytes) -> TrustAnchor:
        """A SIMULATED root (floodlight_trust.sgxsim): quotes verified under it prove nothing.

        Logs a warning the first time each simulated root is made an anchor in this process;
        claims verified under it carry ``simulated=True``.
        """
        if isinstance(certificate, bytes):
            certificate = (
                x509.load_pem_x509_certificate(certificate)
                if certificate.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(certificate)
            )
        digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
        if digest not in _simulated_roots_seen:
            _simulated_roots_seen.add(digest)
            log.warning("using a SIMULATED SGX root CA (%s): its quotes prove nothing about real hardware", digest[:16])
        return cls(certificate, f"SIMULATED SGX root {digest[:16]}", True, digest)

    def __post_init__(self) -> None:
        der = self.certificate.public_bytes(Encoding.DER)
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", hashlib.sha256(der).hexdigest())
        object.__setattr__(self, "_der", der)
        layout = _layout(der, crl=False)
        object.__setattr__(self, "_subject_der", layout.subject if layout is not None else None)
        object.__setattr__(self, "_serial_number", self.certificate.serial_number)
        object.__setattr__(self, "_window", _cert_window(self.certificate, self.name))

    @property
    def der(self) -> bytes:
        """The root certificate's DER."""
        return self._der  # type: ignore[attr-defined, no-any-return]

    @property
    def serial_number(self) -> int:
        """The root's serial number (a root CA CRL that lists it revokes the anchor itself)."""
        return self._serial_number  # type: ignore[attr-defined, no-any-return]

    @property
    def window(self) -> _Window:
        """The root's validity window (checked on every verification, read once)."""
        return self._window  # type: ignore[attr-defined, no-any-return]

    @property
    def subject_der(self) -> bytes | None:
        """The DER of the root's subject (issuer names are compared as bytes, as X.509 path building does)."""
        return self._subject_der  # type: ignore[attr-defined, no-any-return]


# ---------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class DcapResult:
    claims: EnclaveClaims
    warnings: tuple[str, ...]
    quote: QuoteV3
    pck: PckExtensions
    tcb_date: str | None


class _Window(NamedTuple):  # a dozen per cold verification: a tuple is built ~3x faster than a frozen dataclass
    what: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class _VerifiedCollateral:
    tcb: TcbInfo
    qe: QeIdentity
    pck_ca: x509.Certificate
    pck_ca_der: bytes
    pck_ca_subject_der: bytes | None
    pck_revoked: frozenset[int]
    root_revoked: frozenset[int]
    windows: tuple[_Window, ...]  # every validity window the collateral depends on
    crl_windows: tuple[_Window, ...]  # CRL windows (may be relaxed by allow_expired_crls)
    # The latest start and earliest end of all those windows: inside both, every window holds
    # (_verified_collateral computes them).
    valid_from: datetime
    valid_until: datetime


_new_verified = builder(_VerifiedCollateral)


def _verified_collateral(
    tcb: TcbInfo,
    qe: QeIdentity,
    pck_ca: _Cert,
    pck_revoked: frozenset[int],
    root_revoked: frozenset[int],
    windows: tuple[_Window, ...],
    crl_windows: tuple[_Window, ...],
) -> _VerifiedCollateral:
    every = windows + crl_windows
    valid_from = max([w.not_before for w in every])
    valid_until = min([w.not_after for w in every])
    return _new_verified(
        tcb,
        qe,
        pck_ca.cert,
        pck_ca.der,
        pck_ca.subject_der,
        pck_revoked,
        root_revoked,
        windows,
        crl_windows,
        valid_from,
        valid_until,
    )


# Keyed by (collateral content hash, anchor fingerprint, the TCB signers chosen at the verification time).
_cache: dict[tuple[bytes, str, tuple[int, int]], _VerifiedCollateral] = {}
_signers_cache: dict[tuple[bytes, str], _CollateralSigners] = {}  # only filled with verified collateral
_cache_lock = threading.Lock()
_CACHE_MAX = 64


def clear_cache() -> None:
    """Forget verified collateral, PCK certificates and QE reports (tests and benchmarks)."""
    with _cache_lock:
        _cache.clear()
        _signers_cache.clear()
        _pck_cache.clear()
        _qe_reports.clear()
        _attestation_keys.clear()


def _check_window(w: _Window, at: datetime) -> None:
    if at < w.not_before:
        raise CollateralExpired(
            f"{w.what} is not yet valid at {at:%Y-%m-%dT%H:%M:%SZ} (valid from {w.not_before:%Y-%m-%dT%H:%M:%SZ})"
        )
    if at > w.not_after:
        raise CollateralExpired(
            f"{w.what} expired at {w.not_after:%Y-%m-%dT%H:%M:%SZ} (verification time {at:%Y-%m-%dT%H:%M:%SZ})"
        )


def _cert_window(c: x509.Certificate, what: str) -> _Window:
    return _Window(what, c.not_valid_before_utc, c.not_valid_after_utc)


_Layout = Layout


def _layout(der: bytes, *, crl: bool) -> Layout | None:
    """The layout of a certificate (or CRL), or None if its structure is not the expected one:
    then names are compared as x509.Name and signatures checked by cryptography's own calls.
    Comparing names as bytes is what X.509 path building (and dcap-qvl) does."""
    return der_layout(der, crl=crl)


def _oid_text(oid: bytes) -> str:
    """Dotted text of OID content bytes, for messages."""
    arcs: list[int] = []
    value = 0
    for b in oid:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return "<empty OID>"
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


# -- The certificate profile a path validator checks (rustls-webpki, under dcap-qvl) -----------------
# Extensions webpki understands (id-ce 2.5.29.x): keyUsage, subjectAltName, basicConstraints,
# nameConstraints, cRLDistributionPoints, extKeyUsage. Any other extension marked critical makes it
# refuse the certificate (UnsupportedCriticalExtension), and so does this verifier.
_KEY_USAGE, _BASIC_CONSTRAINTS, _EXT_KEY_USAGE = b"\x55\x1d\x0f", b"\x55\x1d\x13", b"\x55\x1d\x25"
_UNDERSTOOD = frozenset(
    (_KEY_USAGE, b"\x55\x1d\x11", _BASIC_CONSTRAINTS, b"\x55\x1d\x1e", b"\x55\x1d\x1f", _EXT_KEY_USAGE)
)
_SERVER_AUTH = oid_der("1.3.6.1.5.5.7.3.1")  # dcap-qvl validates every path for id-kp-serverAuth
_CRL_SIGN = 6  # the keyUsage bit (RFC 5280 4.2.1.3)


_Profile = ExtensionProfile


def _der_length(n: int) -> bytes:
    return (
        bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8)
    )


def _der(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(contents)) + contents


def _profile(entry: _Cert, what: str) -> ExtensionProfile:
    """The profile of a chain certificate, read from its DER (or, when its layout could not be
    sliced, from cryptography's parse of the same extensions, encoded again as an Extensions
    list for the same walk)."""
    if entry.layout is not None:
        p = extension_profile(entry.layout.extensions, what, _oid_text)
    else:
        try:
            encoded = b"".join(
                _der(
                    0x30,
                    _der(0x06, oid_der(e.oid.dotted_string))
                    + (b"\x01\x01\xff" if e.critical else b"")
                    + _der(0x04, e.value.public_bytes()),
                )
                for e in entry.cert.extensions
            )
        except (ValueError, TypeError, NotImplementedError, x509.DuplicateExtension) as err:
            raise ParseError(f"{what}: its extensions cannot be read: {str(err)[:120]}") from None
        p = extension_profile(encoded or None, what, _oid_text)
    for oid in p.critical:
        if oid not in _UNDERSTOOD and oid != _SGX_EXT_DER:
            raise CertificateProfileError(
                f"{what} ({subject_text(entry.cert)}) has an unsupported critical extension {_oid_text(oid)}"
            )
    if p.deferred is not None:
        raise ParseError(f"{what}: malformed extension: {p.deferred}")
    return p


def _check_profile(entry: _Cert, what: str, *, ca: bool, crl_signer: bool = False) -> _Profile:
    """The checks webpki makes of each certificate of a path besides its signature and validity:
    basicConstraints for the role (``ca``: it issues the next certificate), the extended key usage
    dcap-qvl asks for, and, for a CRL issuer, cRLSign in its key usage (when it has one)."""
    p = _profile(entry, what)
    if ca and not p.ca:
        raise CertificateProfileError(
            f"{what} ({subject_text(entry.cert)}) is not a CA (basicConstraints cA is not TRUE) but issues certificates"
        )
    if not ca and p.ca:
        raise CertificateProfileError(
            f"{what} ({subject_text(entry.cert)}) is a CA certificate (basicConstraints cA TRUE) used as an end entity"
        )
    if p.eku is not None and _SERVER_AUTH not in p.eku:
        raise CertificateProfileError(
            f"{what} ({subject_text(entry.cert)}) has an extended key usage without id-kp-serverAuth"
        )
    if crl_signer and p.key_usage is not None:
        unused, bits = p.key_usage[0], p.key_usage[1:]
        byte, bit = divmod(_CRL_SIGN, 8)
        if unused > 7 or len(bits) <= byte or not bits[byte] & (0x80 >> bit):
            raise CertificateProfileError(
                f"{what} ({subject_text(entry.cert)}) signs a CRL but its key usage excludes cRLSign"
            )
    return p


@dataclass(frozen=True, slots=True)
class _Cert:
    """A certificate of a chain with its DER and, when they could be sliced from it, its layout and
    fields (serial number, validity, signature value: else they are cryptography's)."""

    cert: x509.Certificate
    der: bytes
    layout: _Layout | None
    fields: CertificateFields | None = None

    @property
    def serial_number(self) -> int:
        return self.fields.serial if self.fields is not None else self.cert.serial_number

    @property
    def signature(self) -> bytes:
        return self.fields.signature if self.fields is not None else self.cert.signature

    def window(self, what: str) -> _Window:
        f = self.fields
        return _Window(what, f.not_before, f.not_after) if f is not None else _cert_window(self.cert, what)

    @property
    def issuer_der(self) -> bytes | None:
        return self.layout.issuer if self.layout is not None else None

    @property
    def subject_der(self) -> bytes | None:
        return self.layout.subject if self.layout is not None else None

    def issued_by_name(self, subject_der: bytes | None, issuer: x509.Certificate) -> bool:
        """Is this certificate's issuer name ``issuer``'s subject (whose DER is ``subject_der``)?"""
        if self.layout is not None and subject_der is not None:
            return self.layout.issuer == subject_der
        return self.cert.issuer == issuer.subject

    def self_issued(self) -> bool:
        if self.layout is not None:
            return self.layout.issuer == self.layout.subject
        return self.cert.issuer == self.cert.subject


_new_cert = builder(_Cert)  # frozen.py: built in one call (three per cold verification)
_PEM_BEGIN, _PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def _pem_der(block: bytes) -> bytes | None:
    """The DER inside one PEM block, when it is plain base64 (else None: the PEM loader decides)."""
    start, end = block.find(_PEM_BEGIN), block.rfind(_PEM_END)
    if start < 0 or end < start:
        return None
    body = block[start + len(_PEM_BEGIN) : end]
    try:  # PCS PEM: bare newlines; pybase64 is ~10x cheaper and never more lenient (what it refuses
        return pybase64.b64decode(body.replace(b"\n", b""), validate=True)  # goes the standard way)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _load_cert(block: bytes, der: bytes | None = None, *, extensions: bool = False) -> _Cert:
    """One certificate of a chain, with every field this verifier reads parsed now (cryptography
    parses lazily: a malformed field fails here, not later). Names are compared as DER bytes and
    never read as ``x509.Name`` (messages use :func:`subject_text`), unless they cannot be sliced;
    extensions are read only from the PCK leaf (``extensions=True``). ``der``: the block's DER
    when the caller already decoded it."""
    if der is None:
        der = _pem_der(block)
    try:
        cert = x509.load_der_x509_certificate(der) if der is not None else x509.load_pem_x509_certificate(block)
    except x509.InvalidVersion as e:  # not a ValueError: made one, as every other malformed certificate
        raise ValueError(str(e)) from None
    if der is None:
        der = cert.public_bytes(Encoding.DER)
    layout = _layout(der, crl=False)
    # ECDSA as all of Intel's PKI (any other algorithm takes cryptography's reading and checks)
    fields = certificate_fields(der) if layout is not None and layout.algorithm in _SIGNATURE_OID_BY_DER else None
    if fields is None:
        touch_certificate(
            cert, names=layout is None, extensions=extensions and (layout is None or layout.extensions is None)
        )
    else:  # names, serial, validity and signature come from the DER; the key is parsed now
        touch_certificate(cert, names=False, extensions=False, fields=False)
    return _new_cert(cert, der, layout, fields)


def _load_chain(pem: bytes, what: str, anchor: TrustAnchor) -> list[_Cert]:
    """The certificates of ``pem`` other than the anchor itself (recognised by its DER, not parsed)."""
    try:
        ders = [(b, _pem_der(b)) for b in split_pem(pem)]
        return [_load_cert(b, der) for b, der in ders if der != anchor.der]
    except ValueError as e:
        raise ParseError(f"{what}: a certificate is not valid PEM/DER: {e}") from None


# The AlgorithmIdentifier DER of ecdsa-with-SHA256/384/512 (no parameters, RFC 5758), to their OIDs.
_SIGNATURE_OID_BY_DER = {
    b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03" + bytes([n]): oid
    for n, oid in (
        (2, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256),
        (3, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384),
        (4, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA512),
    )
}
_ECDSA_BY_OID = {
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256: ec.ECDSA(hashes.SHA256()),
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384: ec.ECDSA(hashes.SHA384()),
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA512: ec.ECDSA(hashes.SHA512()),
}
_ECDSA_BY_DER = {der: _ECDSA_BY_OID[oid] for der, oid in _SIGNATURE_OID_BY_DER.items()}


def _signed_by(key: object, signature: bytes, algorithm: x509.ObjectIdentifier, layout: _Layout | None) -> bool | None:
    """Is the to-be-signed part of ``layout`` signed by ``key`` (an ECDSA signature, as all of
    Intel's SGX PKI)? Checked on the bytes as they were signed, not a re-encoding. None when it is
    not decided here (no layout, another algorithm or key type): then cryptography's own check runs.
    Inner and outer signature algorithms that differ are a failure, as in cryptography."""
    ecdsa = _ECDSA_BY_OID.get(algorithm)
    if layout is None or ecdsa is None or not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    if layout.algorithm is None:
        return False
    try:
        key.verify(signature, layout.tbs, ecdsa)
    except InvalidSignature:
        return False
    return True


def _issued_by(child: _Cert, issuer: x509.Certificate, issuer_subject_der: bytes | None, what: str) -> None:
    """``child`` names ``issuer`` (whose subject's DER is ``issuer_subject_der``) as its issuer and
    is signed by its key: what ``verify_directly_issued_by`` checks, on the DER as it was signed."""
    ok: bool | None = None
    if child.layout is not None and issuer_subject_der is not None:
        algorithm = _SIGNATURE_OID_BY_DER.get(child.layout.algorithm) if child.layout.algorithm is not None else None
        ok = child.layout.issuer == issuer_subject_der and _signed_by(
            issuer.public_key(),
            child.signature,
            algorithm if algorithm is not None else child.cert.signature_algorithm_oid,
            child.layout,
        )
    if ok is None:
        try:
            child.cert.verify_directly_issued_by(issuer)
            ok = True
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            ok = False
    if not ok:
        raise CertificateChainError(f"{what} ({subject_text(child.cert)}) is not issued by {subject_text(issuer)}")


def _verify_raw(key: ec.EllipticCurvePublicKey, rs: bytes, data: bytes) -> bool:
    if len(rs) != 64:
        return False
    sig = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    try:
        key.verify(sig, data, _ECDSA)
    except InvalidSignature:
        return False
    return True


def _ec_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateChainError(f"{what} does not have an EC key")
    return key


def _signers(chain_pem: bytes, anchor: TrustAnchor, what: str) -> list[_Cert]:
    """The certificates of ``chain_pem`` issued by the anchor (not self-issued), in chain order.
    A block that is the anchor itself is recognised by its DER without being parsed."""
    signers = []
    for block in split_pem(chain_pem):
        der = _pem_der(block)
        if der == anchor.der:
            continue  # the root: self-issued, never a signer
        try:
            c = _load_cert(block, der)
        except ValueError as e:
            raise ParseError(f"{what} issuer chain: a certificate is not valid PEM/DER: {e}") from None
        if c.issued_by_name(anchor.subject_der, anchor.certificate) and not c.self_issued():
            signers.append(c)
    if not signers:
        raise CertificateChainError(f"{what} issuer chain has no certificate issued by {anchor.name}")
    return signers


def _signer_index(windows: tuple[_Window, ...], at: datetime) -> int:
    """Which signer is used at ``at``: the first valid at ``at``, else the first (it then fails its window)."""
    for i, w in enumerate(windows):
        if w.not_before <= at <= w.not_after:
            return i
    return 0


def _signer(
    signers: list[_Cert],
    index: int,
    anchor: TrustAnchor,
    what: str,
    root_revoked: frozenset[int],
    issued: set[int],
    checked: set[int],
) -> _Cert:
    """``signers[index]`` (a TCB signing certificate), checked as dcap-qvl's path validation checks
    it: issued by the anchor, an end entity (basicConstraints, extended key usage) and not revoked
    by the root CA CRL. Intel re-issued the TCB signing certificate with the same key, so a chain
    may list several: the one valid at the verification time is used (``_signer_index``).
    ``issued`` and ``checked`` remember the signers whose signature by the anchor, and whose profile
    and revocation, this call already checked (TCB info and QE identity usually share one)."""
    entry = signers[index]
    if id(entry) not in issued:
        _issued_by(entry, anchor.certificate, anchor.subject_der, f"{what} signing certificate")
        issued.add(id(entry))
    if id(entry) not in checked:
        _check_profile(entry, f"{what} signing certificate", ca=False)
        if entry.serial_number in root_revoked:
            raise CertificateRevoked(
                f"{what} signing certificate {subject_text(entry.cert)} is revoked by the root CA CRL"
            )
        checked.add(id(entry))
    return entry


def _signed_json(raw: bytes, sig: bytes, entry: _Cert, what: str) -> _Window:
    """Check ``raw`` is signed by the (checked) signing certificate ``entry``."""
    signer = entry.cert
    if not _verify_raw(_ec_key(signer, f"{what} signing certificate"), sig, raw):
        raise CollateralSignatureError(f"{what} signature is not valid (signed by {subject_text(signer)})")
    return entry.window(f"{what} signing certificate")


def _crl(
    der: bytes, issuer: x509.Certificate, issuer_subject_der: bytes | None, what: str
) -> tuple[frozenset[int], _Window]:
    """The serial numbers a CRL of ``issuer`` revokes and its window, its signature checked.

    A CRL in the form Intel publishes is read strictly from its DER (:func:`crl_fields`: what it
    reads, cryptography's parse reads the same); any other goes to cryptography's parse, whose
    errors are the ones a malformed CRL has always met."""
    fields = crl_fields(der, issuer_subject_der) if issuer_subject_der is not None else None
    if fields is not None:
        key = issuer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return _crl_parsed(der, issuer, issuer_subject_der, what)
        try:
            key.verify(fields.signature, fields.tbs, _ECDSA_BY_DER[fields.algorithm])
        except InvalidSignature:
            raise CollateralSignatureError(f"{what} signature is not valid") from None
        return fields.revoked, _Window(what, fields.this_update, fields.next_update)
    return _crl_parsed(der, issuer, issuer_subject_der, what)


def _crl_parsed(
    der: bytes, issuer: x509.Certificate, issuer_subject_der: bytes | None, what: str
) -> tuple[frozenset[int], _Window]:
    """:func:`_crl` by cryptography's parse of the CRL."""
    layout = _layout(der, crl=True)
    by_der = layout is not None and issuer_subject_der is not None
    crl = crl_from_der(der, what, issuer=not by_der)  # names compared as DER bytes are never read
    if layout is not None and issuer_subject_der is not None:
        same_issuer = layout.issuer == issuer_subject_der
    else:
        same_issuer = crl.issuer == issuer.subject
    if not same_issuer:
        try:
            named = crl.issuer.rfc4514_string()
        except ValueError:
            named = "<a malformed issuer name>"
        raise CrlIssuerError(f"{what} is issued by {named}, expected {subject_text(issuer)}")
    key = issuer.public_key()
    valid = _signed_by(key, crl.signature, crl.signature_algorithm_oid, layout)
    if valid is None:
        valid = crl.is_signature_valid(key)  # type: ignore[arg-type]
    if not valid:
        raise CollateralSignatureError(f"{what} signature is not valid")
    if crl.next_update_utc is None:
        raise ParseError(f"{what} has no nextUpdate")
    return frozenset(r.serial_number for r in crl), _Window(what, crl.last_update_utc, crl.next_update_utc)


@dataclass(frozen=True, slots=True)
class _CollateralSigners:
    """The TCB signing certificates of a collateral's two chains, with their validity windows."""

    tcb: list[_Cert]
    qe: list[_Cert]
    tcb_windows: tuple[_Window, ...]
    qe_windows: tuple[_Window, ...]
    qe_error: DcapError | ParseError | None = None  # raised after the TCB info check, in QVL's order

    def choice(self, at: datetime) -> tuple[int, int]:
        return _signer_index(self.tcb_windows, at), _signer_index(self.qe_windows, at)


_new_signers = builder(_CollateralSigners)


def _collateral_signers(c: Collateral, anchor: TrustAnchor) -> _CollateralSigners:
    tcb = _signers(c.tcb_info_issuer_chain, anchor, "TCB info")
    qe, qe_error = tcb, None
    if c.qe_identity_issuer_chain != c.tcb_info_issuer_chain:  # usually the very same text: parsed once
        try:
            qe = _signers(c.qe_identity_issuer_chain, anchor, "QE identity")
        except (DcapError, ParseError) as e:
            qe, qe_error = [], e
    return _new_signers(tcb, qe, tuple([x.window("") for x in tcb]), tuple([x.window("") for x in qe]), qe_error)


def _verify_collateral(
    c: Collateral, anchor: TrustAnchor, signers: _CollateralSigners, choice: tuple[int, int]
) -> _VerifiedCollateral:
    """Verify every piece of collateral, with the TCB signers ``choice`` (from the verification time).

    The checks of dcap-qvl's cold path, each once: the TCB signing certificate is issued by the
    anchor (a chain to another root is a :class:`CertificateChainError`, so the caller tries its
    next anchor); the root CA CRL is signed by the anchor, and revokes neither the anchor, the TCB
    signing certificate nor the PCK CA; the TCB info and QE identity signatures; the PCK CA is a
    CA issued by the anchor, and the PCK CRL is signed by it."""
    root = anchor.certificate
    root_window = anchor.window
    tcb_raw, qe_raw = c.tcb_info, c.qe_identity
    tcb_entry = signers.tcb[choice[0]]
    _issued_by(tcb_entry, root, anchor.subject_der, "TCB info signing certificate")
    root_revoked, root_crl_w = _crl(c.root_ca_crl, root, anchor.subject_der, "root CA CRL")
    if anchor.serial_number in root_revoked:
        raise CertificateRevoked(f"the trust anchor {anchor.name} is revoked by its own CRL")
    issued, checked = {id(tcb_entry)}, set[int]()
    _signer(signers.tcb, choice[0], anchor, "TCB info", root_revoked, issued, checked)
    tcb_signer_w = _signed_json(tcb_raw, c.tcb_info_signature, tcb_entry, "TCB info")
    if signers.qe_error is not None:
        raise signers.qe_error
    qe_entry = _signer(signers.qe, choice[1], anchor, "QE identity", root_revoked, issued, checked)
    qe_signer_w = _signed_json(qe_raw, c.qe_identity_signature, qe_entry, "QE identity")
    tcb = parse_tcb_info(tcb_raw)
    qe = parse_qe_identity(qe_raw)
    pck_chain = _load_chain(c.pck_crl_issuer_chain, "PCK CRL issuer chain", anchor)
    cas = [x for x in pck_chain if x.issued_by_name(anchor.subject_der, root) and not x.self_issued()]
    if not cas:
        raise CertificateChainError(f"PCK CRL issuer chain has no CA issued by {anchor.name}")
    pck_ca_entry = cas[0]
    pck_ca = pck_ca_entry.cert
    _issued_by(pck_ca_entry, root, anchor.subject_der, "PCK CA certificate")
    _check_profile(pck_ca_entry, "PCK CA certificate", ca=True, crl_signer=True)
    if pck_ca_entry.serial_number in root_revoked:
        raise PckRevoked(f"PCK CA certificate {subject_text(pck_ca)} is revoked by the root CA CRL")
    pck_revoked, pck_crl_w = _crl(c.pck_crl, pck_ca, pck_ca_entry.subject_der, "PCK CRL (" + _cn_of(pck_ca_entry) + ")")
    windows = (
        root_window,
        tcb_signer_w,
        qe_signer_w,
        pck_ca_entry.window("PCK CA certificate"),
        _Window("TCB info", tcb.issue_date, tcb.next_update),
        _Window("QE identity", qe.issue_date, qe.next_update),
    )
    return _verified_collateral(tcb, qe, pck_ca_entry, pck_revoked, root_revoked, windows, (root_crl_w, pck_crl_w))


_CN_OID_DER = b"\x06\x03\x55\x04\x03"  # OID 2.5.4.3 (commonName), as it appears in a Name


def _cn_of(entry: _Cert) -> str:
    """The first common name of a certificate's subject, read from its DER (as :func:`_cn`)."""
    subject = entry.subject_der
    at = subject.find(_CN_OID_DER) if subject is not None else -1
    if subject is not None and at >= 0:
        try:
            tag, start, end = der_tlv(subject, at + len(_CN_OID_DER))
            if tag in (0x0C, 0x13):  # UTF8String, PrintableString
                return subject[start:end].decode("utf-8")
        except (DerError, UnicodeDecodeError):
            pass
    return _cn(entry.cert)


def _cn(cert: x509.Certificate) -> str:
    try:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except ValueError:
        return subject_text(cert)
    return str(names[0].value) if names else subject_text(cert)


def _collateral(c: Collateral, anchor: TrustAnchor, at: datetime) -> _VerifiedCollateral:
    """The verified collateral, from the cache when this content was verified under this anchor
    with the same TCB signers as the verification time ``at`` selects (the only way ``at`` enters
    the verification; validity windows are checked by the caller on every call)."""
    content = (c.content_hash, anchor.fingerprint)
    with _cache_lock:
        signers = _signers_cache.get(content)
    if signers is None:
        signers = _collateral_signers(c, anchor)
    choice = signers.choice(at)
    key = (*content, choice)
    with _cache_lock:
        vc = _cache.get(key)
    if vc is None:
        vc = _verify_collateral(c, anchor, signers, choice)
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.pop(next(iter(_cache)))
            _cache[key] = vc
            if len(_signers_cache) >= _CACHE_MAX:
                _signers_cache.pop(next(iter(_signers_cache)))
            _signers_cache[content] = signers
    return vc


# ---------------------------------------------------------------------------------------------
# Status rules (QVL).

_QE_MERGE = {
    # (platform status, QE status) -> converged status, as QVL's convergeTcbStatusWithQeTcbStatus.
    TcbStatus.UP_TO_DATE: TcbStatus.OUT_OF_DATE,
    TcbStatus.SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE,
    TcbStatus.CONFIGURATION_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
}


@dataclass(frozen=True, slots=True)
class _Pck:
    """A PCK leaf whose signature by a given CA has been checked (a pure fact about the two certs)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePublicKey
    sha256: str
    ext: PckExtensions
    window: _Window
    serial_number: int
    key_spki: bytes  # the key's SubjectPublicKeyInfo DER (curve and point): the QE report cache's key

    def check_qe_report(self, report: bytes, signature: bytes) -> None:
        """The QE report is signed by this PCK key, or :class:`QeReportSignatureError`.

        A platform's QE report and its signature are the same bytes in every quote of its QE: the
        PCE signs the report once, when it certifies the QE's attestation key. So a success is
        remembered by everything that decides it (this key's SPKI, the report and the signature
        bytes); any other report, signature or key is checked again. Failures are never kept."""
        memo = (self.key_spki, report, signature)
        with _cache_lock:
            if memo in _qe_reports:
                return
        if not _verify_raw(self.key, signature, report):
            raise QeReportSignatureError("QE report signature is not valid for the PCK certificate's key")
        with _cache_lock:
            if len(_qe_reports) >= _QE_REPORTS_MAX:
                _qe_reports.pop(next(iter(_qe_reports)))
            _qe_reports[memo] = None


_new_pck = builder(_Pck)
_pck_cache: dict[tuple[bytes, bytes, bytes], _Pck] = {}
_PCK_CACHE_MAX = 4096
# QE reports whose signature by a PCK key was checked: (PCK key SPKI, report, signature), oldest first.
_qe_reports: dict[tuple[bytes, bytes, bytes], None] = {}
_QE_REPORTS_MAX = 4096
# Attestation keys (64-byte points) already checked to be on P-256, as key objects.
_attestation_keys: dict[bytes, ec.EllipticCurvePublicKey] = {}


def _attestation_key(point: bytes) -> ec.EllipticCurvePublicKey:
    key = _attestation_keys.get(point)
    if key is None:
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)
        except ValueError:
            raise QuoteSignatureError("the attestation key is not a P-256 point") from None
        if len(_attestation_keys) >= _PCK_CACHE_MAX:
            _attestation_keys.clear()
        _attestation_keys[point] = key
    return key


def _pck(quote: QuoteV3, vc: _VerifiedCollateral, anchor: TrustAnchor, at: datetime) -> _Pck:
    blocks = quote.pck_chain_pem()
    if len(blocks) < 2:
        raise CertificateChainError(
            f"the quote's certification data holds {len(blocks)} certificate(s), expected the PCK chain"
        )
    # Keyed by the verified CA too: a hit means this exact leaf and CA text were checked against it.
    cache_key = (blocks[0], blocks[1], vc.pck_ca_der)
    with _cache_lock:
        cached = _pck_cache.get(cache_key)
    if cached is None:
        cached = _check_pck(blocks[0], blocks[1], vc, anchor)
        with _cache_lock:
            if len(_pck_cache) >= _PCK_CACHE_MAX:
                _pck_cache.pop(next(iter(_pck_cache)))
            _pck_cache[cache_key] = cached
    _check_window(cached.window, at)
    if cached.serial_number in vc.pck_revoked:
        raise PckRevoked(f"PCK certificate serial {cached.serial_number:x} is revoked by the PCK CRL")
    return cached


def _check_pck(leaf_pem: bytes, ca_pem: bytes, vc: _VerifiedCollateral, anchor: TrustAnchor) -> _Pck:
    try:
        leaf_entry = _load_cert(leaf_pem, extensions=True)
        # The CA the collateral's PCK CRL covers (the usual case) was loaded and checked with it.
        ca_der = _pem_der(ca_pem)
        ca_entry = None if ca_der == vc.pck_ca_der else _load_cert(ca_pem, ca_der)
    except ValueError as e:
        raise ParseError(f"PCK certificate chain in the quote is not valid PEM: {e}") from None
    leaf = leaf_entry.cert
    if ca_entry is not None and ca_entry.der != vc.pck_ca_der:
        # Not the CA the collateral's PCK CRL covers: check it against the anchor, then refuse the CRL.
        ca = ca_entry.cert
        _issued_by(ca_entry, anchor.certificate, anchor.subject_der, "PCK CA certificate")
        raise CrlIssuerError(
            f"the PCK CRL is issued by {_cn(vc.pck_ca)}, but the quote's PCK certificate by {_cn(ca)}",
            hint="fetch the PCK CRL for the quote's CA (processor or platform)",
        )
    _issued_by(leaf_entry, vc.pck_ca, vc.pck_ca_subject_der, "PCK certificate")
    sgx = _check_profile(leaf_entry, "PCK certificate", ca=False).sgx  # read from the DER, as the names
    if sgx is None:
        raise CertificateChainError("PCK certificate lacks the SGX extensions (1.2.840.113741.1.13.1)")
    key = _ec_key(leaf, "PCK certificate")
    return _new_pck(  # _Pck's fields in order
        leaf,
        key,
        hashlib.sha256(leaf_entry.der).hexdigest(),
        parse_pck_extensions(sgx),
        leaf_entry.window("PCK certificate"),
        leaf_entry.serial_number,
        key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
    )


_new_platform = builder(PlatformIdentity)  # fmspc, pce_id, pck_certificate_sha256, and EPID's two
_new_result = builder(DcapResult)


def verify_quote(
    quote: bytes,
    collateral: Collateral,
    anchor: TrustAnchor,
    *,
    at: datetime,
    unsafe_allow_expired_crls: bool = False,
) -> DcapResult:
    """Verify a DCAP v3 quote against collateral and a pinned root at time ``at``.

    Checks, in QVL's order: collateral signatures, chains and validity windows (verified once per
    collateral content and cached); the PCK chain to ``anchor`` and revocation; the QE report
    signature by the PCK key; QE report data = SHA-256(attestation key || QE auth data); the quote
    signature by the attestation key; the QE identity; the TCB level of the PCK's FMSPC/SVNs.
    A CRL outside its window is a failure unless ``unsafe_allow_expired_crls`` (then a warning).
    """
    parsed = parse_quote(quote)
    if isinstance(parsed, EpidQuote):
        raise UnsupportedEvidence("this is an EPID quote: it is verified by the Intel Attestation Service, not DCAP")
    q = parsed
    warnings: list[str] = []
    if anchor.simulated:
        warnings.append(f"verified against {anchor.name}: NOT real SGX hardware")
    vc = _collateral(collateral, anchor, at)
    inside = vc.valid_from <= at <= vc.valid_until  # the usual case: no window needs a look of its own
    for w in () if inside else vc.windows:
        _check_window(w, at)
    for w in () if inside else vc.crl_windows:
        if unsafe_allow_expired_crls:
            try:
                _check_window(w, at)
            except CollateralExpired as e:
                warnings.append(e.message)
        else:
            try:
                _check_window(w, at)
            except CollateralExpired as e:
                e.hint = "fetch a current CRL (a strict verifier refuses expired CRLs)"
                raise

    leaf = _pck(q, vc, anchor, at)
    pck = leaf.ext
    leaf.check_qe_report(q.qe_report_raw, q.qe_report_signature)
    expected = hashlib.sha256(q.attestation_key + q.qe_auth_data).digest()
    if q.qe_report.report_data[:32] != expected or any(q.qe_report.report_data[32:]):
        raise QeReportDataMismatch(
            "QE report data is not SHA-256(attestation key || QE authentication data) followed by zeros"
        )
    if not _verify_raw(_attestation_key(q.attestation_key), q.signature, q.signed_region):
        raise QuoteSignatureError("quote signature is not valid for the attestation key")

    qe_status, qe_advisories = _qe_status(q, vc.qe)
    tcb_status, advisories, tcb_date = _tcb_status(pck, vc.tcb)
    status = tcb_status
    if qe_status is TcbStatus.REVOKED or tcb_status is TcbStatus.REVOKED:
        status = TcbStatus.REVOKED
    elif qe_status in (TcbStatus.OUT_OF_DATE, TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED):
        status = _QE_MERGE.get(tcb_status, tcb_status)
    all_advisories = tuple(dict.fromkeys(advisories + qe_advisories))
    claims = enclave_claims(
        q.report,
        evidence_type=EvidenceType.DCAP,
        tcb_status=status,
        advisory_ids=all_advisories,
        qe_identity_status=qe_status,
        collateral_issued_at=vc.tcb.issue_date,
        platform=_new_platform(pck.fmspc.hex(), pck.pce_id.hex(), leaf.sha256, None, None),
        simulated=anchor.simulated,
    )
    return _new_result(claims, tuple(warnings), q, pck, tcb_date)


def _qe_status(q: QuoteV3, ident: QeIdentity) -> tuple[TcbStatus, tuple[str, ...]]:
    rep = q.qe_report
    if rep.mr_signer != ident.mr_signer:
        raise QeIdentityMismatch(f"QE MRSIGNER {rep.mr_signer.hex()} is not the QE identity's {ident.mr_signer.hex()}")
    if rep.isv_prod_id != ident.isv_prod_id:
        raise QeIdentityMismatch(f"QE ISVPRODID {rep.isv_prod_id} is not the QE identity's {ident.isv_prod_id}")
    if rep.misc_select & ident.misc_select_mask != ident.misc_select & ident.misc_select_mask:
        raise QeIdentityMismatch("QE MISCSELECT does not match the QE identity")
    mask = ident.attributes_mask
    if len(rep.attributes) == len(ident.attributes) == len(mask):
        m = int.from_bytes(mask, "big")
        same = int.from_bytes(rep.attributes, "big") & m == int.from_bytes(ident.attributes, "big") & m
    else:
        same = bytes(a & m for a, m in zip(rep.attributes, mask, strict=False)) == bytes(
            a & m for a, m in zip(ident.attributes, mask, strict=False)
        )
    if not same:
        raise QeIdentityMismatch("QE ATTRIBUTES do not match the QE identity")
    for level in ident.levels:
        if rep.isv_svn >= level.isv_svn:
            return TcbStatus.parse(level.status, what="QE identity"), level.advisory_ids
    raise QeIdentityMismatch(f"QE ISVSVN {rep.isv_svn} is below every TCB level of the QE identity")


def _tcb_status(pck: PckExtensions, tcb: TcbInfo) -> tuple[TcbStatus, tuple[str, ...], str | None]:
    if pck.fmspc != tcb.fmspc:
        raise TcbLevelNotFound(f"TCB info is for FMSPC {tcb.fmspc.hex()}, the PCK certificate has {pck.fmspc.hex()}")
    if pck.pce_id != tcb.pce_id:
        raise TcbLevelNotFound(f"TCB info is for PCEID {tcb.pce_id.hex()}, the PCK certificate has {pck.pce_id.hex()}")
    comps = pck.cpu_svn_components  # 16 SVNs, as every level's components (both are read as 16)
    for level in tcb.levels:
        if pck.pce_svn >= level.pce_svn and all(map(_ge, comps, level.components)):
            return TcbStatus.parse(level.status, what="TCB info"), level.advisory_ids, level.tcb_date
    raise TcbLevelNotFound(
        f"no TCB level for FMSPC {pck.fmspc.hex()} matches the platform "
        f"(CPUSVN components {list(pck.cpu_svn_components)}, PCESVN {pck.pce_svn})"
    )
