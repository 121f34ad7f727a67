"""VNF enrollment and renewal: verify a VNF enclave's quote on a trusted host, then issue (or keep)
its certificate.

Steps 3-4 of docs/protocol.md. The VNF quote binds the nonce and the enclave's public key and
comes from the SAME platform as its host's trusted quote. The CA signs a certificate for the
enclave's key (default), or for a key the VM generates and seals to the enclave's key
(``vm-generated``). Certificate, enrollment record, audit record and the spent nonce are written
in ONE transaction; a denial is recorded the same way.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust import clock
from floodlight_trust.claims import ClaimSet, EnclaveClaims, enclave_to_json
from floodlight_trust.errors import (
    FtrustError,
    InputError,
    NotFoundError,
    ServiceError,
    UnauthenticatedEvidence,
    VerificationError,
)
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.manager.host_attestation import HostAttestation
from floodlight_trust.manager.platform_checks import platform_key, same_platform
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING, QuoteVerifier, platform_json
from floodlight_trust.manager.verdicts import (
    NONCE_REPLAYED,
    NOTE,
    Denied,
    EnrollmentResult,
    Reason,
    decision_reasons,
    denial_summary,
    denials,
    error_reason,
    reasons_json,
)
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.protocol import b64decode, validate
from floodlight_trust.protocol.binding import check_report_data, key_report_data
from floodlight_trust.protocol.keywrap import WrappedKey, wrap_private_key
from floodlight_trust.protocol.provisioning import provisioning_statement
from floodlight_trust.storage.records import HostRecord, NewEnrollment, VnfRegistration, VnfStatus
from floodlight_trust.storage.stores import Transaction

KEY_MODES = ("enclave", "vm-generated")
SELF_REGISTERING_SETTING = "vm.self_registering_enroll_rules"


def self_registration_actor(rule: str) -> str:
    """How a registration made by an enroll rule itself is named (the operator opted in)."""
    return f"enroll rule {rule} ({SELF_REGISTERING_SETTING})"


CONTROLLER_URI_PREFIX = "urn:ftrust:controller:"  # the revocation stream subscriber (revocation_feed.py)
ADMIN_URI_PREFIX = "urn:ftrust:admin:"


def spki_sha256(spki: bytes) -> str:
    return hashlib.sha256(spki).hexdigest()


def serial_text(serial: int) -> str:
    from floodlight_trust.pki.records import serial_hex

    return str(serial_hex(serial))


def _load_spki(spki: bytes) -> Any:
    try:
        return serialization.load_der_public_key(spki)
    except ValueError:
        raise Denied(Reason("protocol.key", "the enclave public key is not a SubjectPublicKeyInfo DER")) from None


@dataclass(frozen=True, slots=True)
class _Attempt:
    """Who asked to enroll what, in which key mode, when: common to every record of one attempt."""

    host: str
    vnf: str
    mode: str
    at: datetime
    actor: str
    self_register: str | None = None  # the enroll rule that registers this VNF name on first enrollment
    enclave_key: str = ""  # SHA-256 of the enclave's quote-bound key (what the name is bound to)


def identity_reasons(
    registration: VnfRegistration | None,
    rule: str,
    enclave_key: str,
    mrenclave: str,
    key_holder: tuple[str, str] | None,
    host: str,
    vnf: str,
) -> list[Reason]:
    """Is this enclave the one the VNF name stands for? The registered enroll rule must be the one
    that admits it, a name bound to an enclave (key and MRENCLAVE of its first enrollment) takes no
    other until an admin releases it, an enclave key holds one name, and an MRENCLAVE the admin
    named at registration must match. Every failing check is reported."""
    out: list[Reason] = []
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
        if bound_key is not None and (bound_key != enclave_key or bound_mre != mrenclave):
            what = " and ".join(
                w for w, same in (("key", bound_key == enclave_key), ("MRENCLAVE", bound_mre == mrenclave)) if not same
            )
            out.append(
                Reason(
                    "vnf.binding",
                    f"the name {vnf!r} on host {host!r} is bound to the enclave of its first enrollment "
                    f"(key {bound_key[:16]}..., MRENCLAVE {str(bound_mre)[:16]}..., since {clock.format_time(registration.bound_at) if registration.bound_at else None}); "
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
    if key_holder is not None and key_holder != (host, vnf):
        out.append(
            Reason(
                "vnf.binding",
                f"this enclave key is bound to VNF {key_holder[1]!r} on host {key_holder[0]!r}: one enclave holds "
                f"one name (it cannot also enroll as {vnf!r})",
                evidence={"bound_to": list(key_holder), "public_key_sha256": enclave_key},
            )
        )
    return out


class Enrollment:
    """Enroll VNFs of trusted hosts: judge their evidence, record the decision, issue or keep."""

    def __init__(self, ctx: ManagerContext, quotes: QuoteVerifier, hosts: HostAttestation):
        self.ctx = ctx
        self.quotes = quotes
        self.hosts = hosts

    def enroll_evidence(
        self,
        evidence: Any,
        *,
        actor: str,
        key_mode: str | None = None,
        renew_before: timedelta | None = None,
        authoritative: bool = False,
    ) -> EnrollmentResult:
        """Verify a VNF enclave's evidence and, if allowed, issue its certificate (one transaction).

        Only a registered host's VNFs are judged (else NotFoundError, nothing recorded).
        ``authoritative``: the VM fetched the evidence from the host's registered agent. Pushed
        evidence that proves nothing (nonce, quote or binding fails) is an UnauthenticatedEvidence
        error and records nothing. With ``renew_before`` (re-attestation), an allowed VNF whose active
        certificate is for the same enclave key, MRENCLAVE and policy version and has more than
        ``renew_before`` left keeps it: the decision is recorded, nothing is issued
        (``EnrollmentResult.kept``).
        """
        ctx = self.ctx
        at = ctx.now()
        validate("enclave_evidence", evidence)
        host, vnf = evidence["host"], evidence["vnf"]
        mode = key_mode or evidence.get("key_mode") or ctx.key_mode
        if mode not in KEY_MODES:
            raise InputError(f"unknown key mode {mode!r}")
        record = ctx.storage.hosts.find(host)
        if record is None:
            raise NotFoundError(
                f"host {host!r} is not registered: enclave evidence for it is refused and nothing is recorded",
                code="host.unregistered",
                hint="an admin registers hosts with `ftrust vm hosts add NAME --agent URL`",
            )
        registration, self_register = self.require_registered(host, vnf)
        attempt = _Attempt(host, vnf, mode, at, actor, self_register)
        info: dict[str, Any] = {"key_mode": mode}
        claims: EnclaveClaims | None = None
        spki = b""
        nonce: bytes | None = None
        binding: Reason | None = None  # the quote does not bind the nonce and key (VM-fetched only)
        try:
            try:
                quote = b64decode(evidence["quote"], what="enclave_evidence.quote")
                spki = b64decode(evidence["public_key"], what="enclave_evidence.public_key")
                info |= {"quote_sha256": hashlib.sha256(quote).hexdigest(), "public_key_sha256": spki_sha256(spki)}
                attempt = replace(attempt, enclave_key=spki_sha256(spki))
                fresh = bytes.fromhex(evidence["nonce"])
                try:
                    ctx.nonces.check(fresh, purpose="enclave", host=host, vnf=vnf, at=at)
                except VerificationError as e:
                    raise Denied(error_reason("protocol.nonce", e)) from None
                nonce = fresh
                vq = self.quotes.verify(evidence["evidence_type"], quote, evidence["collateral"], at)
                claims = vq.claims
                info |= {
                    "mrenclave": claims.mrenclave,
                    "mrsigner": claims.mrsigner,
                    "platform": platform_json(claims),
                }
                try:
                    check_report_data(key_report_data(fresh, spki), claims.report_data, what="VNF quote")
                except VerificationError as e:
                    binding = error_reason("protocol.binding", e)
                    if not authoritative:
                        raise Denied(binding) from None
            except Denied as d:
                if authoritative:
                    raise
                self._refuse_unauthenticated(attempt, d.reasons, nonce)
            except FtrustError as e:
                if authoritative:
                    raise
                self._refuse_unauthenticated(attempt, [error_reason("protocol.evidence", e)], nonce)
            assert claims is not None
            self._require_trusted_host(record, host, at)
            rule = ctx.policy.enroll_rule(vnf) if ctx.policy is not None else None
            if rule is None:
                raise Denied(
                    Reason("policy.enroll", f"no enroll rule of policy {ctx.policy_version} admits VNF {vnf!r}")
                )
            info |= {"enclave_policy": rule.enclave_policy, "host_policy": rule.host_policy}
            host_policy = ctx.host_policy(record)
            if rule.host_policy and rule.host_policy != host_policy:
                raise Denied(
                    Reason(
                        "policy.enroll",
                        f"VNF {vnf!r} may only run on hosts trusted under host policy {rule.host_policy!r}; "
                        f"host {host!r} is judged by {host_policy!r}",
                    )
                )
            reasons = same_platform(record, claims, require_linkable_epid=ctx.require_linkable_epid)
            if binding is not None:
                reasons.append(binding)
            holder = ctx.storage.enrollments.bound_name(attempt.enclave_key)
            reasons += identity_reasons(
                registration, rule.name, attempt.enclave_key, claims.mrenclave, holder, host, vnf
            )
            if self_register:
                info["registered_by"] = self_registration_actor(self_register)
            decision = ctx.policy.evaluate_enclave(
                rule.enclave_policy, ClaimSet(verified_at=at, enclave=claims, subject=vnf)
            )
            reasons.extend(decision_reasons(decision))  # notes too: kept with the decision
            profile = rule.profile.render(vnf=vnf, host=host)
            if any(u.startswith(ADMIN_URI_PREFIX) for u in profile.san_uris):
                reasons.append(
                    Reason(
                        "policy.profile", f"a VNF certificate may not carry an admin identity ({ADMIN_URI_PREFIX}...)"
                    )
                )
            if any(u.startswith(CONTROLLER_URI_PREFIX) for u in profile.san_uris):
                reasons.append(
                    Reason(
                        "policy.profile",
                        f"a VNF certificate may not carry a controller identity ({CONTROLLER_URI_PREFIX}...)",
                    )
                )
            enclave_key = _load_spki(spki)
            if mode == "vm-generated" and not (
                isinstance(enclave_key, ec.EllipticCurvePublicKey) and isinstance(enclave_key.curve, ec.SECP256R1)
            ):
                reasons.append(Reason("protocol.key", "vm-generated mode needs the enclave's bound key to be EC P-256"))
            if denials(reasons):
                raise Denied(*reasons)
            assert nonce is not None
            current = self._current_certificate(attempt, spki, claims, renew_before)
            if current is not None:
                return self._keep(attempt, current, claims, info, nonce, reasons)
            return self._issue(attempt, profile, enclave_key, spki, claims, info, nonce, reasons)
        except Denied as d:
            return self._deny(attempt, d.reasons, claims, spki, info, nonce)
        except UnauthenticatedEvidence:
            raise  # recorded nowhere
        except FtrustError as e:
            return self._deny(attempt, [error_reason("protocol.evidence", e)], claims, spki, info, nonce)

    def _refuse_unauthenticated(self, a: _Attempt, reasons: list[Reason], nonce: bytes | None) -> NoReturn:
        """Pushed enclave evidence that proves nothing: spend its nonce, record nothing, refuse (403)."""
        if nonce is not None:
            with self.ctx.storage.transaction(durable=False) as tx:
                self.ctx.nonces.burn(tx, nonce, at=a.at)
        denied = denials(reasons)
        raise UnauthenticatedEvidence(
            f"enclave evidence for {a.vnf!r} on host {a.host!r} proves nothing (refused, not recorded): "
            + denial_summary(reasons),
            code=denied[0].rule if denied else "protocol.evidence",
            reasons=reasons_json(reasons),
            hint="ask for a fresh nonce and send the quote that binds it and the enclave's key",
        )

    def enroll(
        self, host: str, vnf: str, *, actor: str, key_mode: str | None = None, renew_before: timedelta | None = None
    ) -> EnrollmentResult:
        """VM-initiated: attest the host if its trust is stale, attest the VNF, issue and install.

        ``renew_before``: see :meth:`enroll_evidence` (re-attestation keeps a certificate with enough
        validity left; nothing is installed then)."""
        ctx = self.ctx
        record = ctx.storage.hosts.get(host)
        self.require_registered(host, vnf)
        if (
            record.status != "trusted"
            or not record.last_trusted_at
            or (ctx.now() - record.last_trusted_at > ctx.host_trust / 2)
        ):
            verdict = self.hosts.attest_host(host, actor=actor)
            if not verdict.trusted:
                attempt = _Attempt(host, vnf, key_mode or ctx.key_mode, ctx.now(), actor)
                reasons = [Reason("host.trust", f"host {host!r} is not trusted"), *verdict.reasons]
                return self._deny(attempt, reasons, None, b"", {"host_audit_id": verdict.audit_id})
            record = ctx.storage.hosts.get(host)
        agent = ctx.agent(record)
        nonce = ctx.nonces.issue("enclave", host, vnf, at=ctx.now())
        evidence = agent.enclave_evidence(vnf, nonce.value)
        result = self.enroll_evidence(
            evidence, actor=actor, key_mode=key_mode, renew_before=renew_before, authoritative=True
        )
        if result.allowed and not result.kept:
            ack = agent.install_credentials(vnf, result.credentials_message())
            leaf = x509.load_pem_x509_certificate(result.certificate_chain[0].encode())
            want = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
            if ack.get("certificate_sha256") != want:
                raise ServiceError(f"agent of {host} acknowledged another certificate than the one issued")
        return result

    def require_registered(self, host: str, vnf: str) -> tuple[VnfRegistration | None, str | None]:
        """The registration of ``vnf`` on ``host``, or (None, the self-registering enroll rule that
        admits the name); NotFoundError (nothing recorded) when neither exists."""
        registration = self.ctx.storage.enrollments.registration(host, vnf)
        if registration is not None:
            return registration, None
        rule = self.ctx.policy.enroll_rule(vnf) if self.ctx.policy is not None else None
        if rule is not None and rule.name in self.ctx.self_registering_rules:
            return None, str(rule.name)
        raise NotFoundError(
            f"VNF {vnf!r} is not registered on host {host!r}: nothing is enrolled or recorded",
            code="vnf.unregistered",
            hint=f"an admin registers it with `ftrust vm vnfs add {host} {vnf}`",
        )

    def _require_trusted_host(self, record: HostRecord | None, host: str, at: datetime) -> None:
        if record is None or record.status != "trusted" or not record.last_trusted_at:
            why = "; ".join(r.get("message", "") for r in (record.reasons if record else []) if r.get("level") != NOTE)[
                :300
            ]
            raise Denied(
                Reason(
                    "host.trust",
                    f"host {host!r} is not trusted"
                    + (f" ({record.status}{': ' + why if why else ''})" if record else " (never attested)"),
                )
            )
        age = at - record.last_trusted_at
        if age > self.ctx.host_trust:
            raise Denied(
                Reason(
                    "host.trust",
                    f"host {host!r} was last attested {int(age.total_seconds())} s ago, more than "
                    f"{int(self.ctx.host_trust.total_seconds())} s: attest it again first",
                )
            )

    def _current_certificate(
        self, a: _Attempt, spki: bytes, claims: EnclaveClaims, renew_before: timedelta | None
    ) -> Any:
        """The active enrollment a re-attested VNF may keep, or None (then a certificate is issued)."""
        if renew_before is None or a.mode != "enclave":  # vm-generated: a new key pair each time
            return None
        for e in self.ctx.storage.enrollments.enrollments(host=a.host, vnf=a.vnf, active_only=True):
            if (
                e.status == "active"
                and e.key_mode == "enclave"
                and e.public_key_sha256 == spki_sha256(spki)
                and e.mrenclave == claims.mrenclave
                and e.policy_version == self.ctx.policy_version
                and e.not_after - a.at > renew_before
            ):
                return e
        return None

    def _record_allowed(
        self,
        a: _Attempt,
        *,
        action: str,
        claims: EnclaveClaims,
        evidence: dict[str, Any],
        notes: Sequence[Reason],
        nonce: bytes,
        policy_version: str | None,
        public_key_sha256: str,
        also: Callable[[Transaction, int], None] | None = None,
    ) -> int:
        """Record an allowed decision in one transaction: spend the nonce (a concurrent replay rolls
        everything back: :class:`Denied`), audit it, run ``also`` (the certificate and enrollment of
        an issue) and mark the VNF enrolled. Returns the audit id, after the durable commit."""

        def record(tx: Transaction) -> int:
            if not self.ctx.nonces.burn(tx, nonce, at=a.at):  # rolls back this enrollment: nothing issued
                raise Denied(NONCE_REPLAYED)
            # The name's binding is written (first enrollment) or re-checked where the certificate is
            # recorded: two enclaves enrolling one name at once cannot both get it.
            if a.self_register is not None:  # unless an admin registered it meanwhile
                tx.enrollments.register_vnf(
                    a.host, a.vnf, enroll_rule=a.self_register, by=self_registration_actor(a.self_register), at=a.at,
                    if_absent=True,
                )  # fmt: skip
            if not tx.enrollments.bind(
                a.host, a.vnf, public_key_sha256=a.enclave_key, mrenclave=claims.mrenclave, at=a.at
            ):
                raise Denied(
                    Reason("vnf.binding", f"the name {a.vnf!r} or this enclave key was bound concurrently to another")
                )
            audit_id = tx.audit.record(
                at=a.at,
                actor=a.actor,
                action=action,
                allowed=True,
                host=a.host,
                vnf=a.vnf,
                policy_version=policy_version,
                simulated=claims.simulated,
                evidence=evidence,
                reasons=reasons_json(notes),
            )
            if also is not None:
                also(tx, audit_id)
            tx.enrollments.record_vnf(
                a.host,
                a.vnf,
                status=VnfStatus.ENROLLED,
                at=a.at,
                mrenclave=claims.mrenclave,
                public_key_sha256=public_key_sha256,
                reasons=[],
            )
            return audit_id

        # Group commit: decisions arriving together share one durable COMMIT; this returns only
        # after it (Storage.write).
        return self.ctx.storage.write(record)

    def _keep(
        self,
        a: _Attempt,
        current: Any,
        claims: EnclaveClaims,
        info: dict[str, Any],
        nonce: bytes,
        notes: Sequence[Reason],
    ) -> EnrollmentResult:
        if claims.simulated:
            info["warning"] = SIMULATED_WARNING
        evidence = info | {"serial": current.serial, "certificate_kept": True,
                           "not_after": clock.format_time(current.not_after)}  # fmt: skip
        policy_version = self.ctx.policy_version
        audit_id = self._record_allowed(
            a,
            action="reattest-vnf",
            claims=claims,
            evidence=evidence,
            notes=notes,
            nonce=nonce,
            policy_version=policy_version,
            public_key_sha256=current.public_key_sha256,
        )
        return EnrollmentResult(
            a.host,
            a.vnf,
            True,
            list(notes),
            policy_version,
            audit_id,
            claims.simulated,
            a.mode,
            current.serial,
            current.not_after,
            kept=True,
        )

    def _issue(
        self,
        a: _Attempt,
        profile: Any,
        enclave_key: Any,
        spki: bytes,
        claims: EnclaveClaims,
        info: dict[str, Any],
        nonce: bytes,
        notes: Sequence[Reason] = (),
    ) -> EnrollmentResult:
        ca = self.ctx.ca
        wrapped = None
        wrapped_key: WrappedKey | None = None
        subject_key = enclave_key
        if a.mode == "vm-generated":
            private = generate_private_key(profile.key_type)
            subject_key = private.public_key()
            der = private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            wrapped_key = wrap_private_key(der, spki, context=f"vnf:{a.vnf}".encode())
            wrapped = wrapped_key.to_json()
        subject_spki = subject_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if claims.simulated:
            info["warning"] = SIMULATED_WARNING
        # Signing is CPU work: it happens before the write transaction, which only records. The
        # certificate leaves this process only after that transaction (certificate, enrollment,
        # audit, nonce) has committed; if it does not commit, the signed bytes are dropped.
        cert: x509.Certificate = ca.sign(subject_key, profile, at=a.at)
        der = cert.public_bytes(serialization.Encoding.DER)
        serial = serial_text(cert.serial_number)
        cert_sha = hashlib.sha256(der).hexdigest()
        evidence = info | {"serial": serial, "certificate_sha256": cert_sha}
        policy_version = self.ctx.policy_version

        def record_certificate(tx: Transaction, audit_id: int) -> None:
            tx.certificates(ca.records.kind).record_issued(cert, at=a.at)
            tx.enrollments.record_enrollment(
                NewEnrollment(
                    host=a.host,
                    vnf=a.vnf,
                    serial=serial,
                    certificate_sha256=cert_sha,
                    public_key_sha256=spki_sha256(subject_spki),
                    key_mode=a.mode,
                    mrenclave=claims.mrenclave,
                    policy_version=policy_version,
                    audit_id=audit_id,
                    issued_at=a.at,
                    not_after=cert.not_valid_after_utc,
                    enclave_claims=enclave_to_json(claims),
                    platform_key=platform_key(claims),
                )
            )

        audit_id = self._record_allowed(
            a,
            action="enroll",
            claims=claims,
            evidence=evidence,
            notes=notes,
            nonce=nonce,
            policy_version=policy_version,
            public_key_sha256=spki_sha256(spki),
            also=record_certificate,
        )
        chain = [cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), ca.certificate_pem.decode("ascii")]
        # The enclave pins the CA: this signature tells it the credentials answer ITS quote (nonce)
        # for ITS key, and that a wrapped key comes from the VM (issue 11, item 4).
        statement = provisioning_statement(nonce=nonce, vnf=a.vnf, enclave_spki=spki, leaf_der=der, wrapped=wrapped_key)
        provisioning = {"nonce": nonce.hex(), "signature": base64.b64encode(ca.sign_provisioning(statement)).decode()}
        return EnrollmentResult(
            a.host,
            a.vnf,
            True,
            list(notes),
            self.ctx.policy_version,
            audit_id,
            claims.simulated,
            a.mode,
            serial,
            cert.not_valid_after_utc,
            chain,
            wrapped,
            provisioning=provisioning,
        )

    def _deny(
        self,
        a: _Attempt,
        reasons: list[Reason],
        claims: EnclaveClaims | None,
        spki: bytes,
        info: dict[str, Any],
        nonce: bytes | None = None,
    ) -> EnrollmentResult:
        simulated = bool(claims and claims.simulated)
        known_host = self.ctx.storage.hosts.find(a.host) is not None
        policy_version = self.ctx.policy_version

        def record(tx: Transaction) -> int:
            if nonce is not None:
                self.ctx.nonces.burn(tx, nonce, at=a.at)  # a nonce presented once is spent, allowed or not
            audit_id = tx.audit.record(
                at=a.at,
                actor=a.actor,
                action="enroll",
                allowed=False,
                host=a.host,
                vnf=a.vnf,
                policy_version=policy_version,
                simulated=simulated,
                evidence=info,
                reasons=reasons_json(reasons),
            )
            if known_host:
                tx.enrollments.record_vnf(
                    a.host,
                    a.vnf,
                    status=VnfStatus.DENIED,
                    at=a.at,
                    mrenclave=claims.mrenclave if claims else None,
                    public_key_sha256=spki_sha256(spki) if spki else None,
                    reasons=reasons_json(reasons),
                )
            return audit_id

        audit_id = self.ctx.storage.write(record)
        return EnrollmentResult(a.host, a.vnf, False, reasons, policy_version, audit_id, simulated, a.mode)
