"""The storage interface: what the Verification Manager, the CAs and the CLI may ask of durable state.

Every engine (``storage/sqlite.py``, ``storage/postgres.py``) implements :class:`Storage`; the
SQL engines share one implementation of the stores (``storage/sqlstores.py``) over their own
session and dialect, so another SQL engine is one more module. Nothing outside
``floodlight_trust/storage/`` writes SQL or imports a database driver
(tests/storage/test_no_sql_outside_storage.py).

Two ways to reach the stores:

- ``storage.hosts``, ``storage.enrollments``, ...: every call is a transaction of its own (a read
  sees committed state; a write commits before it returns). For reads and single-row changes.
- ``with storage.transaction() as tx:`` (or ``storage.write(fn)``): ``tx.hosts``, ``tx.enrollments``,
  ... all in ONE transaction, committed on normal exit and rolled back on any exception. One judged
  step (a verdict, its audit record, its certificate and enrollment, the nonce it spends) is recorded
  in one transaction: a crash or a refusal leaves all of it or none of it.

Isolation. A transaction must be SERIALIZABLE in effect: its reads and writes behave as if no other
transaction (of this or another process or replica) ran at the same time. SQLite gives this by
construction (``BEGIN IMMEDIATE``: one writer at a time). A PostgreSQL engine runs each
:meth:`Storage.transaction` / :meth:`Storage.write` at ``SERIALIZABLE`` and retries ``write``
callbacks on a serialization failure (SQLSTATE 40001), or takes the row locks named under "Race:"
in the method docstrings below, which list every place where two replicas could otherwise race.
The reads on the autocommit stores (``storage.hosts.find``...) need only READ COMMITTED: a judge
reads there, and what it relied on is re-checked inside the recording transaction.

Identifiers stay text as the API shows them (host and VNF names, hex serials, SHA-256 hex); times
are timezone-aware ``datetime`` (UTC), records are the frozen dataclasses of ``storage/records.py``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from cryptography import x509

from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage.records import (
    AuditRecord,
    CertificateAuthorityKind,
    CertificateRecord,
    EnrollmentRecord,
    HostAttestationRecord,
    HostRecord,
    NewEnrollment,
    NonceRecord,
    TpmPin,
    VnfRecord,
    VnfRegistration,
    VnfStatus,
)

T = TypeVar("T")


class HostStore(Protocol):
    """Registered hosts (``manager_hosts``): a host exists only by an admin's registration."""

    def add(
        self,
        name: str,
        agent_url: str | None,
        host_policy: str | None,
        *,
        at: datetime,
        agent_tls_pem: str | None = None,
        replace: bool = False,
    ) -> HostRecord:
        """Register ``name`` (and return its record); ``agent_tls_pem`` pins its agent's TLS certificate or CA. A name already
        registered is a ConflictError unless ``replace``, which changes its agent URL, and its host
        policy and pin when given, but keeps its platform, status and certificates.
        Race: two admins adding one name: the primary key decides (insert-or-conflict, one statement)."""
        ...

    def remove(self, name: str) -> None:
        """Forget ``name`` and its VNF registrations (its enrollments stay, for the audit trail)."""
        ...

    def find(self, name: str) -> HostRecord | None: ...

    def find_with_vnf(self, name: str, vnf: str) -> tuple[HostRecord | None, VnfRegistration | None]:
        """:meth:`find` and ``enrollments.registration(name, vnf)`` (None when the host is not
        registered), read together: SQLite reads both in one statement (an agent's every nonce
        request and enrollment needs both)."""
        ...

    def registered(self, name: str, vnf: str | None = None) -> tuple[bool, bool]:
        """Whether host ``name`` is registered, and whether ``vnf`` is registered on it (False without
        ``vnf`` or without the host): what a nonce request checks, in one statement that builds no
        record (agrees with :meth:`find_with_vnf`)."""
        ...

    def get(self, name: str) -> HostRecord:
        """The host ``name``; NotFoundError (with the `ftrust vm hosts add` hint) if not registered."""
        ...

    def all(self) -> builtins.list[HostRecord]:
        """Every registered host, by name."""
        ...

    def platform_owner(self, platform_key: str, *, other_than: str) -> str | None:
        """The registered host other than ``other_than`` pinned to ``platform_key``, if any.
        Race: two hosts presenting one machine at once: read in the transaction that pins (record_
        attestation); PostgreSQL needs SERIALIZABLE here (or a lock on the platform key), since the
        conflicting write is another row."""
        ...

    def platform_of(self, name: str) -> str | None:
        """The platform ``name`` is pinned to (None: not yet trusted, or unknown)."""
        ...

    def request_repin(self, name: str, *, by: str, at: datetime) -> None:
        """Let the next trusted quote of ``name`` pin another platform (a legitimate PCK re-issue)."""
        ...

    def record_attestation(self, name: str, verdict: HostAttestationRecord) -> None:
        """Record a verdict on a registered host (a host row is never created here); see
        :class:`~floodlight_trust.storage.records.HostAttestationRecord` for what is kept."""
        ...

    def mark_untrusted(self, name: str, reasons: Sequence[dict[str, Any]]) -> None:
        """``name`` is untrusted until attested again (revoked, or unreachable past the grace period)."""
        ...


class EnrollmentStore(Protocol):
    """VNF registrations and their enclave bindings (``manager_vnfs``) and the certificates issued
    to VNFs (``manager_enrollments``)."""

    # -- registrations and bindings ---------------------------------------------------------------
    def register_vnf(
        self,
        host: str,
        vnf: str,
        *,
        enroll_rule: str,
        by: str,
        at: datetime,
        expected_mrenclave: str | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Register ``vnf`` on ``host`` under ``enroll_rule``; True if this call registered it. A name
        already registered is a ConflictError, or with ``if_absent`` (a self-registering enrollment)
        left as it is (False). Race: an admin and a self-registering enrollment at once: the primary
        key decides (insert-or-nothing, one statement)."""
        ...

    def registration(self, host: str, vnf: str) -> VnfRegistration | None: ...

    def bound_name(self, public_key_sha256: str) -> tuple[str, str] | None:
        """The (host, VNF) whose name is bound to enclave key ``public_key_sha256``, if any.
        Race: see :meth:`bind` (a key binds at most one name: read and bind in one transaction)."""
        ...

    def bind(self, host: str, vnf: str, *, public_key_sha256: str, mrenclave: str, at: datetime) -> bool:
        """Bind an unbound name to its first enclave; True if the name is (now) bound to exactly
        this key and MRENCLAVE and no other name is bound to this key. False (nothing changed) if the
        name is bound to another enclave, the key to another name, or the name is not registered.
        Race: two enclaves enrolling one name, or one enclave two names, at once: a conditional update
        (bind only while unbound and while no other row holds the key) that reads back the binding;
        PostgreSQL: the row lock the UPDATE takes makes the second see the first's binding, and the
        key check over other rows needs SERIALIZABLE (or a unique index on the bound key)."""
        ...

    def bind_enrolled(
        self,
        host: str,
        vnf: str,
        *,
        public_key_sha256: str,
        mrenclave: str,
        at: datetime,
        register: tuple[str, str] | None = None,
    ) -> bool:
        """An allowed enrollment's writes to its VNF row, as one step: with ``register`` (enroll
        rule, registered by) first :meth:`register_vnf` ``if_absent``; then :meth:`bind` (its
        result is returned) and, in the same transaction, :meth:`record_vnf` as enrolled with this
        MRENCLAVE and key and no reasons. When it returns False the caller rolls the transaction
        back (what was written is undone). SQLite: one statement (an upsert that binds and records)."""
        ...

    def release(self, host: str, vnf: str) -> None:
        """Free the name's enclave binding: its next enrollment binds it again."""
        ...

    def remove_vnf(self, host: str, vnf: str) -> None: ...

    def record_vnf(
        self,
        host: str,
        vnf: str,
        *,
        status: VnfStatus,
        at: datetime,
        mrenclave: str | None,
        public_key_sha256: str | None,
        reasons: Sequence[dict[str, Any]],
    ) -> None:
        """Record the latest decision on a registered VNF (a row is never created here); a None
        ``mrenclave`` or ``public_key_sha256`` keeps the stored one."""
        ...

    def vnf_known(self, vnf: str, *, host: str | None = None) -> bool:
        """Whether ``vnf`` (on ``host`` if given) is registered or has ever had a certificate."""
        ...

    def vnfs(self, host: str | None = None) -> builtins.list[VnfRecord]:
        """Every registered VNF (of ``host`` if given), by host and name."""
        ...

    # -- enrollments (certificates issued to VNFs) ------------------------------------------------
    def record_enrollment(self, enrollment: NewEnrollment) -> int:
        """Record a new certificate of the VNF; an earlier active one of the same (host, VNF) is
        superseded in the same transaction. Returns the enrollment id. Serials are unique by
        construction (a unique index; the CA's record of the serial is written in the same
        transaction). Race: two enrollments of one VNF at once must not leave two active: both
        run in a transaction that also binds the name (:meth:`bind`), whose row lock orders them;
        PostgreSQL without SERIALIZABLE: lock the (host, VNF) registration row first."""
        ...

    def enrollments(
        self, *, host: str | None = None, vnf: str | None = None, active_only: bool = False
    ) -> builtins.list[EnrollmentRecord]:
        """Enrollments, oldest first."""
        ...

    def live(
        self, *, host: str | None, vnf: str | None, at: datetime, platform_key: str | None = None
    ) -> builtins.list[EnrollmentRecord]:
        """Every certificate that still works at ``at``: active ones and superseded ones not yet
        expired, of ``host`` and/or ``vnf``; with ``platform_key``, also every live certificate
        issued on that platform under any host name. Oldest first."""
        ...

    def by_serial(self, serial: str) -> EnrollmentRecord | None:
        """The enrollment of certificate ``serial`` (lowercase hex), if the VM issued it."""
        ...

    def enclave_claims(self, serial: str) -> dict[str, Any] | None:
        """The verified enclave claims (JSON form) certificate ``serial`` was issued on."""
        ...

    def mark_revoked(self, serial: str, *, at: datetime, reason: str) -> None: ...


class CertificateStore(Protocol):
    """The issued certificates and revocations of one CA (``pki_certificates`` for the VNF CA,
    ``pki_admin_certificates`` for the admin CA: ``kind`` says which)."""

    @property
    def kind(self) -> CertificateAuthorityKind: ...

    def record_issued(self, certificate: x509.Certificate, *, at: datetime) -> CertificateRecord:
        """Record ``certificate`` as issued at ``at``. A serial is recorded once: a repeat is an
        InputError (the primary key; serials are unique by construction, across replicas too)."""
        ...

    def record(self, record: CertificateRecord) -> CertificateRecord:
        """:meth:`record_issued` of a record built already (``CertificateAuthority.sign_encoded``
        builds it from the encodings it made anyway, equal to what :meth:`record_issued` builds)."""
        ...

    def revoke(self, serial: int, reason: str, at: datetime) -> CertificateRecord:
        """Mark ``serial`` revoked at ``at`` for ``reason`` (an RFC 5280 CRLReason name, any spelling
        pki.records.normalize_reason accepts). Revoking twice keeps the first revocation. InputError
        for an unknown serial. Race: two revocations at once: a conditional update (only while not
        revoked), then the stored record is returned."""
        ...

    def get(self, serial: int) -> CertificateRecord | None: ...

    def list(self, *, revoked: bool | None = None, subject: str | None = None) -> builtins.list[CertificateRecord]:
        """Every record, oldest first (by issue time, then serial), optionally only revoked /
        unrevoked ones or those of one subject."""
        ...

    def revoked(self, *, unexpired_at: datetime | None = None) -> builtins.list[CertificateRecord]:
        """Revoked certificates; with ``unexpired_at``, only those still within their validity then."""
        ...

    def revocation_marker(self) -> tuple[int, datetime | None]:
        """How many certificates are revoked and the latest revocation time: changes with every
        revocation, whichever process or replica made it (the CRL publisher re-signs when it does)."""
        ...


class NonceStore(Protocol):
    """Spent challenges (``manager_nonces``): issuing a nonce writes nothing (manager.nonces), using
    one inserts its row. The nonce itself is never stored (manager.nonces derives selector and
    verifier); expired rows are purged."""

    def find(self, selector: str) -> NonceRecord | None: ...

    def spend(self, nonce: NonceRecord, *, purge_expired_before: datetime | None = None) -> bool:
        """Record ``nonce`` (an authenticated token, ``manager.nonces``) as used at ``nonce.used_at``;
        False if its selector is recorded already (a replay). With ``purge_expired_before``, first
        forget nonces that expired before then.
        Race: two uses of one nonce (on two replicas) at once: one insert keyed by the selector; exactly
        one caller gets True, the other waits for the first's commit and inserts nothing. It runs in
        the transaction that records the decision, so a decision and its nonce's use are one step."""
        ...

    def purge(self, *, expired_before: datetime) -> int:
        """Forget challenges that expired before ``expired_before``; how many."""
        ...


class AuditLog(Protocol):
    """Every decision of the VM (``manager_audit``), written in the transaction of the state it explains."""

    def record(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        allowed: bool,
        host: str | None = None,
        vnf: str | None = None,
        policy_version: str | None = None,
        simulated: bool = False,
        evidence: dict[str, Any] | None = None,
        reasons: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        """Append one record; its id (increasing: ids are allocated by the engine, never by a caller)."""
        ...

    def records(self, *, since: datetime | None = None, limit: int = 1000) -> builtins.list[AuditRecord]:
        """The latest ``limit`` records (at or after ``since``), oldest first."""
        ...

    def get(self, audit_id: int) -> AuditRecord | None: ...


class TpmStore(Protocol):
    """Hosts' registered TPMs (``manager_host_tpm``): the pinned AK and the last verified round."""

    def get(self, host: str) -> TpmPin | None: ...

    def pin(
        self,
        host: str,
        *,
        ak_public: bytes,
        ak_name: str,
        ak_spki_sha256: str,
        ek_spki_sha256: str,
        ek_trust: str,
        at: datetime,
    ) -> None:
        """Pin ``host``'s AK (a new registration replaces the old one and forgets its rounds)."""
        ...

    def record_round(self, host: str, *, clock: ClockInfo, firmware: int, boot_pcrs: dict[str, dict[int, str]]) -> None:
        """A verified round: its clock (for the next round) and, the first time, the boot PCRs."""
        ...


class Transaction(Protocol):
    """The stores inside one open transaction (see the module docstring for isolation)."""

    @property
    def hosts(self) -> HostStore: ...

    @property
    def enrollments(self) -> EnrollmentStore: ...

    @property
    def nonces(self) -> NonceStore: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def tpm(self) -> TpmStore: ...

    def certificates(self, kind: CertificateAuthorityKind = CertificateAuthorityKind.VNF) -> CertificateStore: ...


class Storage(Transaction, Protocol):
    """A deployment's durable state on one engine. Thread-safe. Its stores (``storage.hosts``...)
    run each call in a transaction of its own; :meth:`transaction` and :meth:`write` group calls."""

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        """One transaction: committed when the block exits normally, rolled back on any exception.
        ``durable=False`` may skip the flush to stable storage (safe against a crash of the process,
        may be lost on power failure): only for state that may be lost, such as nonces."""
        ...

    def write(self, fn: Callable[[Transaction], T], *, durable: bool = True) -> T:
        """Run ``fn(tx)`` in a transaction and return its result once committed (never before).

        The engine may run ``fn`` in another thread, share one commit with writes of other threads
        (SQLite group commit: an exception from ``fn`` undoes only its own writes) or run it again
        after a serialization failure (PostgreSQL): ``fn`` must use only ``tx`` and values computed
        before the call, and have no effect outside ``tx``."""
        ...

    def migrate(self) -> None:
        """Apply the migrations not yet applied (storage.migrations.STEPS), in order. Idempotent."""
        ...

    def close(self) -> None:
        """Release this thread's connection (the engine reconnects on next use)."""
        ...

    def check(self) -> None:
        """Raise :class:`~floodlight_trust.errors.StorageUnavailable` unless the database answers now
        (a replica's health: ``GET /v1/health`` answers 503, and no CRL is served, while it does not)."""
        ...
