"""Evidence to claims: the one path from evidence bytes to a :class:`~floodlight_trust.claims.ClaimSet`.

The Verification Manager's quote verification (``manager/quote_verification.py``), the evidence fixtures of
policy tests (``policy_lang/testing.py``) and ``ftrust policy eval --ima-log/--quote/--ias-report``
all verify evidence here, so a policy judged at the command line sees exactly the claims the VM
would judge. Pure: bytes, trust roots and the time in, claims out. A
:class:`~floodlight_trust.errors.VerificationError` means the evidence does not verify (the VM's
denial); any other :class:`~floodlight_trust.errors.FtrustError` means it is malformed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from floodlight_trust.claims import ClaimSet, EnclaveClaims, ImaClaims
from floodlight_trust.errors import InputError, VerificationError

# The SGX verifiers and cryptography are imported where they are used: `ftrust policy eval
# --ima-log` starts in a fresh process, and needs neither.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes

    from floodlight_trust.evidence.collateral import Collateral
    from floodlight_trust.evidence.dcap import DcapResult, TrustAnchor
    from floodlight_trust.evidence.ima.signatures import KeyringEntry


@dataclass(frozen=True, slots=True)
class IasReportEvidence:
    """What IAS returns for a quote: the exact body bytes and its two headers."""

    body: bytes
    signature_b64: bytes
    signing_certificate: bytes


@dataclass(frozen=True, slots=True)
class Evidence:
    """A host's IMA list and/or one enclave's evidence (a DCAP quote with collateral, or an IAS report)."""

    ima_log: bytes | None = None
    ima_source: str | None = None  # names the list in locations and messages
    keyring: tuple[KeyringEntry, ...] = ()  # certificates and public keys for ima-sig signatures
    quote: bytes | None = None
    collateral: Collateral | None = None
    ias_report: IasReportEvidence | None = None


def load_keyring(data: bytes, what: str) -> list[KeyringEntry]:
    """Certificates and public keys from one file: PEM (any number of CERTIFICATE and PUBLIC KEY
    blocks, as Keylime's IMA keyrings hold) or DER (a certificate or a SubjectPublicKeyInfo)."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        if b"-----BEGIN" in data:
            entries: list[KeyringEntry] = []
            for m in re.finditer(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", data, re.S):
                if m.group(1) == b"CERTIFICATE":
                    entries.append(x509.load_pem_x509_certificate(m.group(0)))
                elif m.group(1) == b"PUBLIC KEY":
                    entries.append(_public_key(serialization.load_pem_public_key(m.group(0))))
                else:
                    raise ValueError(f"a {m.group(1).decode()} block is neither a CERTIFICATE nor a PUBLIC KEY")
            if not entries:
                raise ValueError("no PEM block")
            return entries
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            return [_public_key(serialization.load_der_public_key(data))]
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InputError(f"{what} is not a certificate or public key: {e}") from None


def _public_key(key: PublicKeyTypes) -> CertificatePublicKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import dh

    # Every public key type but Diffie-Hellman can stand in a certificate.
    if isinstance(key, dh.DHPublicKey):
        raise ValueError(f"a {type(key).__name__} cannot sign IMA signatures")
    return key


def verify_ima(data: bytes, *, keyring: Sequence[KeyringEntry] = (), source: str | None = None) -> ImaClaims:
    """Appraise a whole measurement list (template hashes recomputed, PCR 10 replayed, signatures
    checked against ``keyring``); a template hash that does not match is a VerificationError."""
    from floodlight_trust.evidence.ima import appraise_measurement_list

    appraisal = appraise_measurement_list(data, keyring=keyring, source=source)
    if not appraisal.ok:
        problem = appraisal.first_problem()
        name = source or "the IMA list"
        raise VerificationError(f"IMA list {name} does not verify: {problem.message if problem else 'see findings'}")
    return appraisal.claims


def verify_dcap(
    quote: bytes,
    collateral: Collateral,
    anchors: Sequence[TrustAnchor],
    *,
    at: datetime,
    unsafe_allow_expired_crls: bool = False,
) -> DcapResult:
    """Verify a DCAP quote under the first of ``anchors`` its PCK chain reaches (the VM may pin the
    Intel root and, when its operator says so, the simulated one). Raises the last chain error when
    no anchor fits, any other verification error at once."""
    from floodlight_trust.evidence.dcap import CertificateChainError, verify_quote

    last: CertificateChainError | None = None
    for anchor in anchors:
        try:
            return verify_quote(quote, collateral, anchor, at=at, unsafe_allow_expired_crls=unsafe_allow_expired_crls)
        except CertificateChainError as e:  # another root: try the next anchor
            last = e
    if last is None:
        raise VerificationError("no SGX trust anchor is configured")
    raise last


def verify_enclave(
    evidence: Evidence,
    *,
    at: datetime,
    anchors: Sequence[TrustAnchor] | None = None,
    ias_report_signing_ca: bytes | None = None,
    unsafe_allow_expired_crls: bool = False,
) -> EnclaveClaims | None:
    """The enclave claims of ``evidence`` (None when it holds no enclave evidence). DCAP quotes are
    verified under ``anchors`` (default: the pinned Intel root), IAS reports against
    ``ias_report_signing_ca`` (default: Intel's, pinned)."""
    if evidence.quote is not None and evidence.ias_report is not None:
        raise InputError("one enclave's evidence: a DCAP quote or an IAS report, not both")
    if evidence.quote is not None:
        if evidence.collateral is None:
            raise InputError("a DCAP quote needs its collateral")
        from floodlight_trust.evidence.dcap import TrustAnchor

        roots = list(anchors) if anchors is not None else [TrustAnchor.intel()]
        return verify_dcap(
            evidence.quote, evidence.collateral, roots, at=at, unsafe_allow_expired_crls=unsafe_allow_expired_crls
        ).claims
    if evidence.ias_report is not None:
        from floodlight_trust.evidence.ias import report_signing_ca, verify_report

        r = evidence.ias_report
        ca = ias_report_signing_ca if ias_report_signing_ca is not None else report_signing_ca()
        return verify_report(r.body, r.signature_b64, r.signing_certificate, ca, at=at).claims
    return None


def verify_evidence(
    evidence: Evidence,
    *,
    at: datetime,
    anchors: Sequence[TrustAnchor] | None = None,
    ias_report_signing_ca: bytes | None = None,
    unsafe_allow_expired_crls: bool = False,
    subject: str | None = None,
) -> ClaimSet:
    """Verify everything ``evidence`` holds and return the claims a policy judges, at ``at``."""
    ima = None
    if evidence.ima_log is not None:
        ima = verify_ima(evidence.ima_log, keyring=evidence.keyring, source=evidence.ima_source)
    enclave = verify_enclave(
        evidence,
        at=at,
        anchors=anchors,
        ias_report_signing_ca=ias_report_signing_ca,
        unsafe_allow_expired_crls=unsafe_allow_expired_crls,
    )
    return ClaimSet(verified_at=at, ima=ima, enclave=enclave, subject=subject)
