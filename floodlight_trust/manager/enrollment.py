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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from floodlight_trust.claims import EnclaveClaims, enclave_to_json
from floodlight_trust.clock import format_time
from floodlight_trust.errors import FtrustError, InputError, NotFoundError, ServiceError, UnauthenticatedEvidence
from floodlight_trust.judges.enrollment import (
    ADMIN_URI_PREFIX,
    CONTROLLER_URI_PREFIX,
    EnrollmentCase,
    gate,
    judge_enrollment,
    spki_sha256,
)
from floodlight_trust.judges.platform import platform_key
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.manager.host_attestation import HostAttestation
from floodlight_trust.manager.quote_verification import SIMULATED_WARNING, QuoteVerifier
from floodlight_trust.manager.verdicts import NONCE_REPLAYED, Denied, EnrollmentResult
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.protocol import b64encode
from floodlight_trust.protocol.evidence import EnclaveEvidence, EvidenceParseError, KeyMode, enclave_evidence
from floodlight_trust.protocol.keywrap import WrappedKey, wrap_private_key
from floodlight_trust.protocol.provisioning import provisioning_statement
from floodlight_trust.reasons import Reason, denial_summary, denials, reasons_json
from floodlight_trust.storage.records import HostRecord, NewEnrollment, VnfRegistration, VnfStatus
from floodlight_trust.storage.stores import Transaction

__all__ = ["ADMIN_URI_PREFIX", "CONTROLLER_URI_PREFIX", "KEY_MODES", "Enrollment"]

KEY_MODES = tuple(m.value for m in KeyMode)
ENCLAVE_KEY_FIELD = "enclave_public_key"  # stored with an enrollment's enclave claims (base64 SPKI DER)
SELF_REGISTERING_SETTING = "vm.self_registering_enroll_rules"


def self_registration_actor(rule: str) -> str:
    """How a registration made by an enroll rule itself is named (the operator opted in)."""
    return f"enroll rule {rule} ({SELF_REGISTERING_SETTING})"


def serial_text(serial: int) -> str:
    from floodlight_trust.pki.records import serial_hex

    return str(serial_hex(serial))


@dataclass(frozen=True, slots=True)
class _Attempt:
    """Who asked to enroll what, in which key mode, when: common to every record of one attempt."""

    host: str
    vnf: str
    mode: KeyMode
    at: datetime
    actor: str
    self_register: str | None = None  # the enroll rule that registers this VNF name on first enrollment
    enclave_key: str = ""  # SHA-256 of the enclave's quote-bound key (what the name is bound to)


def _unregistered_host(host: str) -> NotFoundError:
    return NotFoundError(
        f"host {host!r} is not registered: enclave evidence for it is refused and nothing is recorded",
        code="host.unregistered",
        hint="an admin registers hosts with `ftrust vm hosts add NAME --agent URL`",
    )


class Enrollment:
    """Enroll VNFs of trusted hosts: judge their evidence, record the decision, issue or keep."""

    def __init__(self, ctx: ManagerContext, quotes: QuoteVerifier, hosts: HostAttestation):
        self.ctx = ctx
        self.quotes = quotes
        self.hosts = hosts

    def enroll_evidence(
        self,
        evidence: EnclaveEvidence | Mapping[str, Any],
        *,
        actor: str,
        key_mode: str | None = None,
        renew_before: timedelta | None = None,
        authoritative: bool = False,
    ) -> EnrollmentResult:
        """Judge a VNF enclave's evidence (``judges.enrollment.judge_enrollment``) and act on the
        verdict: issue (or keep) its certificate, or record the denial, in one transaction.

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
        try:
            e = enclave_evidence(evidence)
        except EvidenceParseError as err:
            mode = self._key_mode(key_mode, None)
            self._registered_host(err.host)
            _, self_register = self.require_registered(err.host, str(err.vnf))
            attempt = _Attempt(err.host, str(err.vnf), mode, at, actor, self_register)
            reasons = [Reason.from_error("protocol.evidence", err)]
            if not authoritative:
                self._refuse_unauthenticated(attempt, reasons, None)
            return self._deny(attempt, reasons, None, b"", {"key_mode": mode.value})
        mode = self._key_mode(key_mode, e.key_mode)
        enclave_key = spki_sha256(e.public_key)
        # Host, registration, the nonce's spent row and the key's binding, read in one statement.
        reads = ctx.storage.enrollment_reads(
            e.host, e.vnf, nonce_selector=ctx.nonces.selector(e.nonce), public_key_sha256=enclave_key
        )
        record, registration, self_register = self._registered(e.host, e.vnf, reads.host, reads.registration)
        attempt = _Attempt(e.host, e.vnf, mode, at, actor, self_register, enclave_key)
        case = EnrollmentCase(
            evidence=e,
            key_mode=mode,
            host_record=record,
            registration=registration,
            nonce=ctx.nonces.record(e.nonce, host=e.host, vnf=e.vnf, spent=reads.spent_nonce),
        )
        if gate(case, at=at):  # only a fresh nonce's quote is worth verifying (IAS or PCS may be asked)
            quote = self.quotes.verify(e.evidence_type, e.quote, e.collateral, at)
            # (the key's binding matters to a verified quote only; it is re-checked where it is written)
            holder = reads.key_holder if isinstance(quote, EnclaveClaims) else None
            case = replace(case, quote=quote, key_holder=holder)
        j = judge_enrollment(case, ctx.policy, ctx.settings.enrollments, at=at)
        nonce = e.nonce if j.nonce_fresh else None
        reasons = list(j.reasons)
        if not j.authentic and not authoritative:
            self._refuse_unauthenticated(attempt, reasons, nonce)
        info = dict(j.evidence_info or {})
        if self_register:
            info["registered_by"] = self_registration_actor(self_register)
        claims = j.claims
        if not j.allowed or claims is None or nonce is None:
            return self._deny(attempt, reasons, claims, e.public_key, info, nonce)
        try:
            current = self._current_certificate(attempt, e.public_key, claims, renew_before)
            if current is not None:
                return self._keep(attempt, current, claims, info, nonce, reasons)
            return self._issue(attempt, j.profile, e.public_key, j.public_key, claims, info, nonce, reasons)
        except Denied as d:  # a commit-time check: a concurrent replay or binding
            return self._deny(attempt, d.reasons, claims, e.public_key, info, nonce)
        except UnauthenticatedEvidence:
            raise
        except FtrustError as err:
            return self._deny(attempt, [Reason.from_error("protocol.evidence", err)], claims, e.public_key, info, nonce)

    def _key_mode(self, requested: str | None, sent: KeyMode | None) -> KeyMode:
        mode = requested or sent or self.ctx.key_mode
        try:
            return KeyMode(mode)
        except ValueError:
            raise InputError(f"unknown key mode {mode!r}") from None

    def _registered_host(self, host: str) -> HostRecord:
        record = self.ctx.storage.hosts.find(host)
        if record is None:
            raise _unregistered_host(host)
        return record

    def registered_host_and_vnf(
        self, host: str, vnf: str, *, unregistered_host: Callable[[str], NotFoundError] | None = None
    ) -> tuple[HostRecord, VnfRegistration | None, str | None]:
        """The registered host, and :meth:`require_registered` of ``vnf`` on it, read together;
        NotFoundError (``unregistered_host(host)``, by default refusing enclave evidence) when the
        host is not registered."""
        record, registration = self.ctx.storage.hosts.find_with_vnf(host, vnf)
        return self._registered(host, vnf, record, registration, unregistered_host=unregistered_host)

    def _registered(
        self,
        host: str,
        vnf: str,
        record: HostRecord | None,
        registration: VnfRegistration | None,
        *,
        unregistered_host: Callable[[str], NotFoundError] | None = None,
    ) -> tuple[HostRecord, VnfRegistration | None, str | None]:
        """:meth:`registered_host_and_vnf` of the records read."""
        if record is None:
            raise (unregistered_host or _unregistered_host)(host)
        if registration is not None:
            return record, registration, None
        return record, None, self._self_registering_rule(host, vnf)

    def require_known(
        self, host: str, vnf: str | None, *, unregistered_host: Callable[[str], NotFoundError] | None = None
    ) -> None:
        """The NotFoundError :meth:`registered_host_and_vnf` would raise for ``host`` and ``vnf``
        (``vnf`` None: the host alone), or nothing; one read that builds no record (a nonce request
        needs no more: its answer is judged with the records read then)."""
        host_known, vnf_known = self.ctx.storage.hosts.registered(host, vnf)
        if not host_known:
            raise (unregistered_host or _unregistered_host)(host)
        if vnf is not None and not vnf_known:
            self._self_registering_rule(host, vnf)

    def _refuse_unauthenticated(self, a: _Attempt, reasons: list[Reason], nonce: bytes | None) -> NoReturn:
        """Pushed enclave evidence that proves nothing: spend its nonce, record nothing, refuse (403)."""
        if nonce is not None:
            with self.ctx.storage.transaction(durable=False) as tx:
                self.ctx.nonces.burn(tx, nonce, host=a.host, vnf=a.vnf, at=a.at)
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
                attempt = _Attempt(host, vnf, self._key_mode(key_mode, None), ctx.now(), actor)
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
        return None, self._self_registering_rule(host, vnf)

    def _self_registering_rule(self, host: str, vnf: str) -> str:
        rule = self.ctx.policy.enroll_rule(vnf) if self.ctx.policy is not None else None
        if rule is not None and rule.name in self.ctx.self_registering_rules:
            return str(rule.name)
        raise NotFoundError(
            f"VNF {vnf!r} is not registered on host {host!r}: nothing is enrolled or recorded",
            code="vnf.unregistered",
            hint=f"an admin registers it with `ftrust vm vnfs add {host} {vnf}`",
        )

    def _current_certificate(
        self, a: _Attempt, spki: bytes, claims: EnclaveClaims, renew_before: timedelta | None
    ) -> Any:
        """The active enrollment a re-attested VNF may keep, or None (then a certificate is issued)."""
        if renew_before is None or a.mode is not KeyMode.ENCLAVE:  # vm-generated: a new key pair each time
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
            # (a concurrent replay rolls back this enrollment: nothing is issued)
            if not self.ctx.nonces.burn(tx, nonce, host=a.host, vnf=a.vnf, at=a.at):
                raise Denied(NONCE_REPLAYED)
            # The name's binding is written (first enrollment) or re-checked where the certificate is
            # recorded: two enclaves enrolling one name at once cannot both get it. The same step
            # registers a self-registering name (unless an admin registered it meanwhile) and marks
            # the VNF enrolled (undone with the rest if anything below fails).
            register = None
            if a.self_register is not None:
                register = (a.self_register, self_registration_actor(a.self_register))
            if not tx.enrollments.bind_enrolled(
                a.host, a.vnf, public_key_sha256=a.enclave_key, mrenclave=claims.mrenclave, at=a.at, register=register
            ):
                raise Denied(
                    Reason("vnf.binding", f"the name {a.vnf!r} or this enclave key was bound concurrently to another")
                )
            if public_key_sha256 != a.enclave_key:  # (the recorded key is the bound one: a bug otherwise)
                raise ServiceError("the enrollment's key is not the enclave's quote-bound key")
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
        evidence = info | {
            "serial": current.serial,
            "certificate_kept": True,
            "not_after": format_time(current.not_after),
        }
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
            host=a.host,
            vnf=a.vnf,
            allowed=True,
            reasons=list(notes),
            policy_version=policy_version,
            audit_id=audit_id,
            simulated=claims.simulated,
            key_mode=KeyMode(a.mode),
            serial=current.serial,
            not_after=current.not_after,
            kept=True,
        )

    def _issue(
        self,
        a: _Attempt,
        profile: Any,
        spki: bytes,
        parsed: PublicKeyTypes | None,
        claims: EnclaveClaims,
        info: dict[str, Any],
        nonce: bytes,
        notes: Sequence[Reason] = (),
    ) -> EnrollmentResult:
        ca = self.ctx.issuer
        wrapped = None
        wrapped_key: WrappedKey | None = None
        # the judged SPKI DER, as the judgement parsed it
        subject_key: Any = parsed if parsed is not None else serialization.load_der_public_key(spki)
        if a.mode is KeyMode.VM_GENERATED:
            private = generate_private_key(profile.key_type)
            subject_key = private.public_key()
            der = private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            wrapped_key = wrap_private_key(der, spki, context=f"vnf:{a.vnf}".encode())
            wrapped = wrapped_key.to_json()
        if claims.simulated:
            info["warning"] = SIMULATED_WARNING
        # Signing is CPU work: it happens before the write transaction, which only records. The
        # certificate leaves this process only after that transaction (certificate, enrollment,
        # audit, nonce) has committed; if it does not commit, the signed bytes are dropped.
        signed = ca.sign_encoded(subject_key, profile, at=a.at)
        der, not_after = signed.der, signed.record.not_after
        serial = serial_text(signed.record.serial)
        cert_sha = signed.record.sha256
        evidence = info | {"serial": serial, "certificate_sha256": cert_sha}
        policy_version = self.ctx.policy_version

        records = ca.records
        if records is None:
            raise ServiceError("the CA was opened without certificate records: it cannot issue")

        def record_certificate(tx: Transaction, audit_id: int) -> None:
            tx.certificates(records.kind).record(signed.record)
            tx.enrollments.record_enrollment(NewEnrollment(
                host=a.host,
                vnf=a.vnf,
                serial=serial,
                certificate_sha256=cert_sha,
                public_key_sha256=spki_sha256(signed.spki),  # the certified key's
                key_mode=a.mode.value,
                mrenclave=claims.mrenclave,
                policy_version=policy_version,
                audit_id=audit_id,
                issued_at=a.at,
                not_after=not_after,
                # with the enclave's key: reload-policy judges the key type again (judge_admission)
                enclave_claims=enclave_to_json(claims) | {ENCLAVE_KEY_FIELD: b64encode(spki)},
                platform_key=platform_key(claims),
            ))  # fmt: skip

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
        chain = [signed.record.pem, ca.certificate_pem.decode("ascii")]
        # The enclave pins the CA: this signature tells it the credentials answer ITS quote (nonce)
        # for ITS key, and that a wrapped key comes from the VM (issue 11, item 4).
        statement = provisioning_statement(nonce=nonce, vnf=a.vnf, enclave_spki=spki, leaf_der=der, wrapped=wrapped_key)
        provisioning = {"nonce": nonce.hex(), "signature": base64.b64encode(ca.sign_provisioning(statement)).decode()}
        return EnrollmentResult(
            host=a.host,
            vnf=a.vnf,
            allowed=True,
            reasons=list(notes),
            policy_version=self.ctx.policy_version,
            audit_id=audit_id,
            simulated=claims.simulated,
            key_mode=KeyMode(a.mode),
            serial=serial,
            not_after=not_after,
            certificate_chain=chain,
            wrapped_key=wrapped,
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
            if nonce is not None:  # a nonce presented once is spent, allowed or not
                self.ctx.nonces.burn(tx, nonce, host=a.host, vnf=a.vnf, at=a.at)
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
        return EnrollmentResult(
            host=a.host,
            vnf=a.vnf,
            allowed=False,
            reasons=reasons,
            policy_version=policy_version,
            audit_id=audit_id,
            simulated=simulated,
            key_mode=KeyMode(a.mode),
        )
