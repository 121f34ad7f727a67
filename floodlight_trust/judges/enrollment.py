"""Judge a VNF enrollment: is this enclave's evidence a fresh, authentic answer from its host's
platform, and does the policy in force admit this enclave under this name?

:func:`judge_enrollment` is pure. Stages (a later one runs only when the quote verified):

1. evidence (fresh evidence only): the nonce is fresh; then the quote verified (the shell's
   outcome) and binds the nonce and the enclave's key.
2. host (fresh evidence only): the host is trusted, and was attested recently enough.
3. admission: an enroll rule admits the name, on this host's host policy; the quote comes from the
   host's platform; the name and key are this enclave's (registration, binding); the enclave
   policy admits the claims; the certificate profile carries no admin or controller identity; in
   ``vm-generated`` mode the enclave's key is EC P-256 (the VM seals the generated key to it).

``reload-policy`` judges each live enrollment again with stages 3 only, on the claims and key it
was issued for (:func:`judge_admission`): enrollment and reload cannot disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from floodlight_trust.claims import ClaimSet, EnclaveClaims
from floodlight_trust.clock import format_time
from floodlight_trust.errors import VerificationError
from floodlight_trust.judges.host import host_policy_of
from floodlight_trust.judges.platform import platform_identity, same_platform
from floodlight_trust.judges.protocol import Checks, check_nonce, check_quote
from floodlight_trust.protocol.binding import check_report_data, key_report_data
from floodlight_trust.protocol.evidence import EnclaveEvidence, KeyMode
from floodlight_trust.reasons import Reason, ReasonLevel, denials

if TYPE_CHECKING:
    from floodlight_trust.storage.records import HostRecord, NonceRecord, VnfRegistration
    from policy_lang.compile import EnrollRule, Policy

CONTROLLER_URI_PREFIX = "urn:ftrust:controller:"  # the revocation stream subscriber (revocation_feed.py)
ADMIN_URI_PREFIX = "urn:ftrust:admin:"


def spki_sha256(spki: bytes) -> str:
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True, slots=True)
class EnrollmentSettings:
    """The operator's settings an enrollment verdict depends on."""

    host_trust: timedelta = timedelta(seconds=120)  # a host's trusted verdict lasts this long
    require_linkable_epid: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """What stage 3 judges: an enclave (its verified claims and key) under a name on a host."""

    host: str
    vnf: str
    key_mode: KeyMode
    public_key: bytes | None  # the enclave's SubjectPublicKeyInfo DER (None: not known, reload only)
    claims: EnclaveClaims
    host_record: HostRecord | None
    registration: VnfRegistration | None
    key_holder: tuple[str, str] | None  # the (host, VNF) the enclave's key is bound to, if any


@dataclass(frozen=True, slots=True)
class EnrollmentCase:
    """What :func:`judge_enrollment` judges: fresh evidence and the records it needs, as values."""

    evidence: EnclaveEvidence
    key_mode: KeyMode
    host_record: HostRecord | None
    registration: VnfRegistration | None
    nonce: NonceRecord | None  # the VM's record of the evidence's nonce (None: never issued)
    quote: EnclaveClaims | Reason | None = None  # the shell's quote verification (None: not run)
    key_holder: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EnrollmentJudgement:
    """The verdict on one enrollment, with every reason (notes too)."""

    host: str
    vnf: str
    key_mode: KeyMode
    reasons: tuple[Reason, ...]
    checks: tuple[str, ...]  # the checks that ran, in order
    nonce_fresh: bool = False  # the nonce was fresh: it is spent with this verdict
    authentic: bool = False  # nonce fresh, the quote verifies and binds this nonce and this key
    claims: EnclaveClaims | None = None
    rule: EnrollRule | None = None
    profile: Any = None  # the enroll rule's certificate profile, rendered for this VNF and host
    evidence_info: Mapping[str, Any] | None = None  # digests and facts for the audit record
    public_key: PublicKeyTypes | None = None  # the enclave's key as the protocol.key check parsed it

    @property
    def allowed(self) -> bool:
        return not denials(self.reasons)


# -- stage 1: evidence ---------------------------------------------------------------------------
def check_key_binding(e: EnclaveEvidence, claims: EnclaveClaims) -> list[Reason]:
    """REPORTDATA binds the nonce and the enclave's public key."""
    try:
        check_report_data(key_report_data(e.nonce, e.public_key), claims.report_data, what="VNF quote")
    except VerificationError as err:
        return [Reason.from_error("protocol.binding", err)]
    return []


# -- stage 2: host -------------------------------------------------------------------------------
def check_host_trusted(record: HostRecord | None, host: str, host_trust: timedelta, at: datetime) -> list[Reason]:
    """The host is trusted, and its trusted verdict is at most ``host_trust`` old."""
    if record is None or record.status != "trusted" or not record.last_trusted_at:
        why = "; ".join(
            r.get("message", "") for r in (record.reasons if record else []) if r.get("level") != ReasonLevel.NOTE
        )[:300]
        return [
            Reason(
                "host.trust",
                f"host {host!r} is not trusted"
                + (f" ({record.status}{': ' + why if why else ''})" if record else " (never attested)"),
            )
        ]
    age = at - record.last_trusted_at
    if age > host_trust:
        return [
            Reason(
                "host.trust",
                f"host {host!r} was last attested {int(age.total_seconds())} s ago, more than "
                f"{int(host_trust.total_seconds())} s: attest it again first",
            )
        ]
    return []


# -- stage 3: admission --------------------------------------------------------------------------
def check_enroll_rule(policy: Policy | None, vnf: str) -> tuple[EnrollRule | None, list[Reason]]:
    """An enroll rule of the policy in force admits the name."""
    rule = policy.enroll_rule(vnf) if policy is not None else None
    if rule is None:
        version = policy.version if policy is not None else None
        return None, [Reason("policy.enroll", f"no enroll rule of policy {version} admits VNF {vnf!r}")]
    return rule, []


def check_rule_host_policy(rule: EnrollRule, host_policy: str, host: str, vnf: str) -> list[Reason]:
    """The rule's host policy is the one that judges this host."""
    if rule.host_policy and rule.host_policy != host_policy:
        return [
            Reason(
                "policy.enroll",
                f"VNF {vnf!r} may only run on hosts trusted under host policy {rule.host_policy!r}; "
                f"host {host!r} is judged by {host_policy!r}",
            )
        ]
    return []


def check_identity(a: Admission, rule: str) -> list[Reason]:
    """Is this enclave the one the VNF name stands for? The registered enroll rule must be the one
    that admits it, a name bound to an enclave (key and MRENCLAVE of its first enrollment) takes no
    other until an admin releases it, an enclave key holds one name, and an MRENCLAVE the admin
    named at registration must match. Every failing check is reported."""
    out: list[Reason] = []
    host, vnf, registration, mrenclave = a.host, a.vnf, a.registration, a.claims.mrenclave
    enclave_key = spki_sha256(a.public_key) if a.public_key is not None else None
    release = f"`ftrust vm vnfs release {host} {vnf}`"
    if registration is not None:
        if registration.enroll_rule and registration.enroll_rule != rule:
            out.append(
                Reason(
                    "vnf.enroll_rule",
                    f"VNF {vnf!r} is registered under enroll rule {registration.enroll_rule!r}, but the policy's "
                    f"rule for that name is {rule!r}",
                )
            )
        if registration.expected_mrenclave and registration.expected_mrenclave != mrenclave:
            out.append(
                Reason(
                    "vnf.binding",
                    f"VNF {vnf!r} was registered for MRENCLAVE {registration.expected_mrenclave[:16]}..., this "
                    f"enclave is {mrenclave[:16]}...",
                    evidence={"registered_mrenclave": registration.expected_mrenclave, "mrenclave": mrenclave},
                )
            )
        bound_key, bound_mre = registration.bound_public_key_sha256, registration.bound_mrenclave
        if bound_key is not None and enclave_key is not None and (bound_key != enclave_key or bound_mre != mrenclave):
            what = " and ".join(
                w for w, same in (("key", bound_key == enclave_key), ("MRENCLAVE", bound_mre == mrenclave)) if not same
            )
            out.append(
                Reason(
                    "vnf.binding",
                    f"the name {vnf!r} on host {host!r} is bound to the enclave of its first enrollment "
                    f"(key {bound_key[:16]}..., MRENCLAVE {str(bound_mre)[:16]}..., since "
                    f"{format_time(registration.bound_at) if registration.bound_at else None}); "
                    f"this enclave's {what} differs: another enclave cannot take the name until an admin runs "
                    f"{release}",
                    evidence={
                        "bound_public_key_sha256": bound_key,
                        "bound_mrenclave": bound_mre,
                        "public_key_sha256": enclave_key,
                        "mrenclave": mrenclave,
                    },
                )
            )
    if a.key_holder is not None and a.key_holder != (host, vnf):
        out.append(
            Reason(
                "vnf.binding",
                f"this enclave key is bound to VNF {a.key_holder[1]!r} on host {a.key_holder[0]!r}: one enclave "
                f"holds one name (it cannot also enroll as {vnf!r})",
                evidence={"bound_to": list(a.key_holder), "public_key_sha256": enclave_key},
            )
        )
    return out


def check_enclave_policy(policy: Policy, rule: EnrollRule, a: Admission, at: datetime) -> list[Reason]:
    """The rule's enclave policy admits the enclave's claims (notes kept)."""
    decision = policy.evaluate_enclave(rule.enclave_policy, ClaimSet(verified_at=at, enclave=a.claims, subject=a.vnf))
    return list(decision.reasons)


def check_profile_identities(profile: Any) -> list[Reason]:
    """A VNF certificate carries no admin identity and no controller identity."""
    out = []
    if any(u.startswith(ADMIN_URI_PREFIX) for u in profile.san_uris):
        out.append(
            Reason("policy.profile", f"a VNF certificate may not carry an admin identity ({ADMIN_URI_PREFIX}...)")
        )
    if any(u.startswith(CONTROLLER_URI_PREFIX) for u in profile.san_uris):
        out.append(
            Reason(
                "policy.profile", f"a VNF certificate may not carry a controller identity ({CONTROLLER_URI_PREFIX}...)"
            )
        )
    return out


def check_key_type(public_key: bytes | None, mode: KeyMode) -> list[Reason]:
    """The enclave's key is a SubjectPublicKeyInfo; in ``vm-generated`` mode an EC P-256 key (the
    generated key is sealed to it)."""
    return enclave_key(public_key, mode)[1]


def enclave_key(public_key: bytes | None, mode: KeyMode) -> tuple[PublicKeyTypes | None, list[Reason]]:
    """:func:`check_key_type`, with the key it parsed (None when there is none or it does not parse)."""
    if public_key is None:
        if mode is KeyMode.VM_GENERATED:
            return None, [
                Reason.note("protocol.key", "the enclave's key was not stored with this enrollment: not re-checked")
            ]
        return None, []
    try:
        key = serialization.load_der_public_key(public_key)
    except ValueError:
        return None, [Reason("protocol.key", "the enclave public key is not a SubjectPublicKeyInfo DER")]
    if mode is KeyMode.VM_GENERATED and not (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key, [Reason("protocol.key", "vm-generated mode needs the enclave's bound key to be EC P-256")]
    return key, []


def _admit(
    a: Admission, policy: Policy | None, settings: EnrollmentSettings, c: Checks, at: datetime
) -> tuple[EnrollRule | None, Any, PublicKeyTypes | None]:
    """Stage 3 into ``c``; returns the enroll rule, its rendered certificate profile and the
    enclave's key, parsed."""
    rule, found = check_enroll_rule(policy, a.vnf)
    c.add("policy.enroll", found)
    host_policy = host_policy_of(a.host_record, policy)
    profile = None
    if rule is not None:
        c.run("policy.enroll.host_policy", lambda: check_rule_host_policy(rule, host_policy, a.host, a.vnf))
    if a.host_record is not None:
        record, linkable = a.host_record, settings.require_linkable_epid
        c.run("protocol.platform", lambda: same_platform(record, a.claims, require_linkable_epid=linkable))
    if rule is not None and policy is not None:
        c.run("vnf.identity", lambda: check_identity(a, rule.name))
        c.run("enclave.policy", lambda: check_enclave_policy(policy, rule, a, at))
        profile = rule.profile.render(vnf=a.vnf, host=a.host)
        c.run("policy.profile", lambda: check_profile_identities(profile))
    key, found = enclave_key(a.public_key, a.key_mode)
    c.add("protocol.key", found)
    return rule, profile, key


def judge_admission(
    a: Admission, policy: Policy | None, settings: EnrollmentSettings, *, at: datetime
) -> EnrollmentJudgement:
    """Stage 3 alone: ``reload-policy`` judges a live enrollment again with it."""
    c = Checks()
    rule, profile, _ = _admit(a, policy, settings, c, at)
    return EnrollmentJudgement(
        host=a.host,
        vnf=a.vnf,
        key_mode=a.key_mode,
        reasons=tuple(c.reasons),
        checks=tuple(c.ran),
        authentic=True,
        claims=a.claims,
        rule=rule,
        profile=profile,
    )


def gate(case: EnrollmentCase, *, at: datetime) -> bool:
    """Is the quote of this evidence worth verifying (its nonce is fresh)? The manager asks before
    it verifies (IAS or PCS may be called)."""
    e = case.evidence
    return not check_nonce(case.nonce, e.nonce, purpose="enclave", host=e.host, vnf=e.vnf, at=at)


def judge_enrollment(
    case: EnrollmentCase, policy: Policy | None, settings: EnrollmentSettings, *, at: datetime
) -> EnrollmentJudgement:
    """Every check of one VNF's fresh enclave evidence; see the module's docstring for the stages."""
    e = case.evidence
    spki = e.public_key
    info: dict[str, Any] = {
        "key_mode": case.key_mode.value,
        "quote_sha256": hashlib.sha256(e.quote).hexdigest(),
        "public_key_sha256": spki_sha256(spki),
    }
    c = Checks()
    nonce_fresh = c.run(
        "protocol.nonce", lambda: check_nonce(case.nonce, e.nonce, purpose="enclave", host=e.host, vnf=e.vnf, at=at)
    )
    claims: EnclaveClaims | None = None
    authentic = False
    rule: EnrollRule | None = None
    profile = None
    key: PublicKeyTypes | None = None
    if nonce_fresh and c.run("sgx.quote", lambda: check_quote(case.quote)) and isinstance(case.quote, EnclaveClaims):
        claims = case.quote
        info |= {"mrenclave": claims.mrenclave, "mrsigner": claims.mrsigner, "platform": platform_identity(claims)}
        authentic = c.run("protocol.binding", lambda: check_key_binding(e, claims))
        c.run("host.trust", lambda: check_host_trusted(case.host_record, e.host, settings.host_trust, at))
        admission = Admission(
            host=e.host,
            vnf=e.vnf,
            key_mode=case.key_mode,
            public_key=spki,
            claims=claims,
            host_record=case.host_record,
            registration=case.registration,
            key_holder=case.key_holder,
        )
        rule, profile, key = _admit(admission, policy, settings, c, at)
        if rule is not None:
            info |= {"enclave_policy": rule.enclave_policy, "host_policy": rule.host_policy}
    return EnrollmentJudgement(
        host=e.host,
        vnf=e.vnf,
        key_mode=case.key_mode,
        reasons=tuple(c.reasons),
        checks=tuple(c.ran),
        nonce_fresh=nonce_fresh,
        authentic=authentic,
        claims=claims,
        rule=rule,
        profile=profile,
        evidence_info=info,
        public_key=key,
    )
