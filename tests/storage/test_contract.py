"""The storage contract: each Protocol of floodlight_trust/storage/stores.py, through the engine.

No HTTP, no manager: what any engine must do, run on every engine of conftest.ENGINES.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.errors import ConflictError, InputError, NotFoundError
from floodlight_trust.evidence.tpm.structures import ClockInfo
from floodlight_trust.storage.records import (
    CertificateAuthorityKind,
    CertificateStatus,
    EnrollmentStatus,
    HostAttestationRecord,
    HostStatus,
    NewEnrollment,
    NoncePurpose,
    NonceRecord,
    VnfStatus,
)
from floodlight_trust.storage.stores import Storage

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(serial: int, *, days: int = 1, cn: str = "vnf-a") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(AT - timedelta(minutes=1))
        .not_valid_after(AT + timedelta(days=days))
        .sign(KEY, hashes.SHA256())
    )


def enrollment(serial: str, *, host: str = "h1", vnf: str = "fw", audit_id: int, at: datetime = AT,
               platform_key: str | None = "dcap-pck:aa") -> NewEnrollment:  # fmt: skip
    return NewEnrollment(
        host=host, vnf=vnf, serial=serial, certificate_sha256="c" * 64, public_key_sha256="k" * 64,
        key_mode="enclave", mrenclave="m" * 64, policy_version="p1", audit_id=audit_id, issued_at=at,
        not_after=at + timedelta(hours=1), enclave_claims={"mrenclave": "m" * 64}, platform_key=platform_key,
    )  # fmt: skip


def audit(storage: Storage, action: str = "enroll", **kw: object) -> int:
    return storage.audit.record(at=AT, actor="test", action=action, allowed=True, **kw)  # type: ignore[arg-type]


# -- hosts -----------------------------------------------------------------------------------------------
def test_a_host_exists_by_registration_only_and_a_second_registration_conflicts(storage: Storage) -> None:
    assert storage.hosts.find("h1") is None
    with pytest.raises(NotFoundError, match="not registered"):
        storage.hosts.get("h1")
    added = storage.hosts.add("h1", "https://h1:9", "base", at=AT, agent_tls_pem="PEM")
    assert (added.name, added.agent_url, added.host_policy, added.status) == ("h1", "https://h1:9", "base", "unknown")
    assert added.status is HostStatus.UNKNOWN and added.last_attested_at is None and added.reasons == ()
    with pytest.raises(ConflictError, match="already registered"):
        storage.hosts.add("h1", "https://other:9", None, at=AT)
    replaced = storage.hosts.add("h1", "https://h1:10", None, at=AT, replace=True)
    assert (replaced.agent_url, replaced.host_policy, replaced.agent_tls_pem) == ("https://h1:10", "base", "PEM")
    storage.hosts.add("h0", None, None, at=AT)
    assert [h.name for h in storage.hosts.all()] == ["h0", "h1"]


def test_a_trusted_verdict_pins_the_platform_once_and_a_repin_replaces_it(storage: Storage) -> None:
    storage.hosts.add("h1", "http://h1", None, at=AT)
    storage.hosts.add("h2", "http://h2", None, at=AT)
    trusted = HostAttestationRecord(
        trusted=True, at=AT, reasons=({"rule": "r", "message": "note", "level": "note"},), policy_version="p1",
        platform_pck_sha256="aa", platform={"pck_certificate_sha256": "aa"}, ima_state_json='{"s": 1}',
        ima_entries=7, ima_list_sha256="ff", platform_key="dcap-pck:aa",
    )  # fmt: skip
    storage.hosts.record_attestation("h1", trusted)
    h1 = storage.hosts.get("h1")
    assert h1.status is HostStatus.TRUSTED and h1.last_trusted_at == h1.last_attested_at == h1.last_contact_at == AT
    assert (h1.platform_key, h1.platform_pck_sha256, h1.platform, h1.ima_entries) == (
        "dcap-pck:aa", "aa", {"pck_certificate_sha256": "aa"}, 7
    )  # fmt: skip
    assert h1.reasons == ({"rule": "r", "message": "note", "level": "note"},)
    assert storage.hosts.platform_owner("dcap-pck:aa", other_than="h2") == "h1"
    assert storage.hosts.platform_owner("dcap-pck:aa", other_than="h1") is None
    assert storage.hosts.platform_of("h1") == "dcap-pck:aa" and storage.hosts.platform_of("h2") is None

    later = AT + timedelta(minutes=1)
    other = HostAttestationRecord(trusted=True, at=later, reasons=(), policy_version="p1",
                                  platform_pck_sha256="bb", platform_key="dcap-pck:bb", ima_entries=9)  # fmt: skip
    storage.hosts.record_attestation("h1", other)
    assert storage.hosts.platform_of("h1") == "dcap-pck:aa"  # the first trusted quote's platform stays
    storage.hosts.request_repin("h1", by="admin:alice", at=later)
    assert storage.hosts.get("h1").repin_requested_by == "admin:alice"
    storage.hosts.record_attestation("h1", HostAttestationRecord(**{**_fields(other), "repin": True}))
    h1 = storage.hosts.get("h1")
    assert (h1.platform_key, h1.platform_pck_sha256, h1.repin_requested_by) == ("dcap-pck:bb", "bb", None)

    denied = HostAttestationRecord(trusted=False, at=later + timedelta(minutes=1), reasons=({"rule": "x"},),
                                   policy_version="p2")  # fmt: skip
    storage.hosts.record_attestation("h1", denied)
    h1 = storage.hosts.get("h1")
    assert h1.status is HostStatus.UNTRUSTED and h1.last_trusted_at == later and h1.ima_entries == 9  # kept
    storage.hosts.mark_untrusted("h2", [{"rule": "revocation"}])
    assert storage.hosts.get("h2").status == "untrusted" and storage.hosts.get("h2").reasons == (
        {"rule": "revocation"},
    )


def _fields(record: HostAttestationRecord) -> dict[str, object]:
    return {k: getattr(record, k) for k in record.__slots__}  # type: ignore[attr-defined]


def test_removing_a_host_forgets_its_vnfs_but_keeps_its_enrollments(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    storage.enrollments.record_enrollment(enrollment("0a", audit_id=audit(storage)))
    storage.hosts.remove("h1")
    assert storage.hosts.find("h1") is None and storage.enrollments.registration("h1", "fw") is None
    assert [e.serial for e in storage.enrollments.enrollments(host="h1")] == ["0a"]


# -- VNF registrations, bindings, enrollments ------------------------------------------------------------------
def test_a_name_binds_to_its_first_enclave_only(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT, expected_mrenclave="e" * 64)
    with pytest.raises(ConflictError, match="already registered"):
        storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="other", at=AT)
    assert not storage.enrollments.register_vnf("h1", "fw", enroll_rule="self", by="rule", at=AT, if_absent=True)
    assert storage.enrollments.register_vnf("h1", "new", enroll_rule="self", by="rule", at=AT, if_absent=True)
    storage.enrollments.remove_vnf("h1", "new")
    reg = storage.enrollments.registration("h1", "fw")
    assert reg is not None and (reg.enroll_rule, reg.registered_by, reg.expected_mrenclave) == ("r", "admin", "e" * 64)
    assert reg.bound_public_key_sha256 is None and reg.bound_at is None
    assert storage.enrollments.bind("h1", "fw", public_key_sha256="k1", mrenclave="m1", at=AT)
    assert storage.enrollments.bind("h1", "fw", public_key_sha256="k1", mrenclave="m1", at=AT + timedelta(1))
    assert not storage.enrollments.bind("h1", "fw", public_key_sha256="k2", mrenclave="m1", at=AT)
    assert not storage.enrollments.bind("h1", "fw", public_key_sha256="k1", mrenclave="m2", at=AT)
    assert not storage.enrollments.bind("h1", "nope", public_key_sha256="k1", mrenclave="m1", at=AT)
    storage.enrollments.register_vnf("h1", "ids", enroll_rule="r", by="admin", at=AT)
    assert not storage.enrollments.bind("h1", "ids", public_key_sha256="k1", mrenclave="m1", at=AT)  # key taken
    taken = storage.enrollments.registration("h1", "ids")
    assert taken is not None and taken.bound_public_key_sha256 is None
    reg = storage.enrollments.registration("h1", "fw")
    assert reg is not None and (reg.bound_public_key_sha256, reg.bound_mrenclave, reg.bound_at) == ("k1", "m1", AT)
    assert storage.enrollments.bound_name("k1") == ("h1", "fw") and storage.enrollments.bound_name("k2") is None
    storage.enrollments.release("h1", "fw")
    assert storage.enrollments.bound_name("k1") is None
    assert storage.enrollments.bind("h1", "ids", public_key_sha256="k1", mrenclave="m1", at=AT)  # free again
    storage.enrollments.release("h1", "ids")
    assert storage.enrollments.bind("h1", "fw", public_key_sha256="k2", mrenclave="m2", at=AT)
    storage.enrollments.remove_vnf("h1", "fw")
    assert storage.enrollments.registration("h1", "fw") is None


class _RolledBack(Exception):
    pass


def _bind_enrolled(storage: Storage, vnf: str, key: str, mrenclave: str, register: bool, at: datetime) -> bool:
    """bind_enrolled as the enrollment calls it: in a write that is rolled back when it says False."""

    def fn(tx: object) -> bool:
        ok = tx.enrollments.bind_enrolled(  # type: ignore[attr-defined]
            "h1", vnf, public_key_sha256=key, mrenclave=mrenclave, at=at, register=("self", "rule") if register else None
        )
        if not ok:
            raise _RolledBack
        return bool(ok)

    try:
        return storage.write(fn)
    except _RolledBack:
        return False


def _sequence(storage: Storage, vnf: str, key: str, mrenclave: str, register: bool, at: datetime) -> bool:
    """What bind_enrolled stands for: register (if absent), bind, record the VNF as enrolled."""

    def fn(tx: object) -> bool:
        e = tx.enrollments  # type: ignore[attr-defined]
        if register:
            e.register_vnf("h1", vnf, enroll_rule="self", by="rule", at=at, if_absent=True)
        if not e.bind("h1", vnf, public_key_sha256=key, mrenclave=mrenclave, at=at):
            raise _RolledBack
        e.record_vnf("h1", vnf, status=VnfStatus.ENROLLED, at=at, mrenclave=mrenclave, public_key_sha256=key, reasons=[])
        return True

    try:
        return storage.write(fn)
    except _RolledBack:
        return False


def _vnf_state(storage: Storage, vnf: str) -> object:
    rows = [r for r in storage.enrollments.vnfs("h1") if r.name == vnf]
    return [(r.__class__.__name__, *(getattr(r, f) for f in r.__dataclass_fields__ if f != "name")) for r in rows], (
        storage.enrollments.registration("h1", vnf)
    )


@pytest.mark.parametrize("register", [True, False])
def test_bind_enrolled_does_what_register_bind_and_record_do(storage: Storage, register: bool) -> None:
    """Two names per case, one through bind_enrolled and one through the three steps: same answers,
    same rows (the VNF record and the registration), for every state a name can be in."""
    storage.hosts.add("h1", None, None, at=AT)
    storage.enrollments.register_vnf("h1", "holder", enroll_rule="r", by="admin", at=AT)
    assert storage.enrollments.bind("h1", "holder", public_key_sha256="held", mrenclave="m", at=AT)
    later = AT + timedelta(minutes=5)
    cases = [  # (state before, key, mrenclave, answer)
        ("absent", "k1", "m1", register),
        ("registered", "k2", "m2", True),
        ("bound-same", "k3", "m3", True),
        ("bound-other", "k4", "m4", False),
        ("registered", "held", "m", False),  # the key is another name's
    ]
    for i, (state, base_key, mrenclave, answer) in enumerate(cases):
        for how, tag in ((_bind_enrolled, "A"), (_sequence, "B")):
            name = f"vnf{tag}{i}"
            key = base_key if base_key == "held" else f"{base_key}KEY{tag}"  # each name its own key
            if state != "absent":
                storage.enrollments.register_vnf("h1", name, enroll_rule="r", by="admin", at=AT)
            if state == "bound-same":
                storage.enrollments.bind("h1", name, public_key_sha256=key, mrenclave=mrenclave, at=AT)
            if state == "bound-other":
                storage.enrollments.bind("h1", name, public_key_sha256=f"otherKEY{tag}", mrenclave="mo", at=AT)
            assert how(storage, name, key, mrenclave, register, later) is answer, (state, how.__name__)
        a, b = _vnf_state(storage, f"vnfA{i}"), _vnf_state(storage, f"vnfB{i}")
        assert repr(a).replace(f"vnfA{i}", "X").replace("KEYA", "K") == repr(b).replace(f"vnfB{i}", "X").replace(
            "KEYB", "K"
        ), state
        if answer:
            key = f"{base_key}KEYA"
            reg = storage.enrollments.registration("h1", f"vnfA{i}")
            assert reg is not None and (reg.bound_public_key_sha256, reg.bound_mrenclave) == (key, mrenclave)
            (row,) = [r for r in storage.enrollments.vnfs("h1") if r.name == f"vnfA{i}"]
            assert (row.status, row.mrenclave, row.public_key_sha256, row.last_attested_at) == (
                VnfStatus.ENROLLED, mrenclave, key, later,
            )  # fmt: skip


def test_find_with_vnf_reads_the_host_and_the_registration(storage: Storage) -> None:
    assert storage.hosts.find_with_vnf("h1", "fw") == (None, None)
    storage.hosts.add("h1", "https://h1:1", None, at=AT)
    assert storage.hosts.find_with_vnf("h1", "fw") == (storage.hosts.find("h1"), None)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT, expected_mrenclave="e" * 64)
    storage.enrollments.bind("h1", "fw", public_key_sha256="k", mrenclave="m", at=AT)
    storage.hosts.add("h2", None, None, at=AT)
    storage.enrollments.register_vnf("h2", "fw", enroll_rule="other", by="admin", at=AT)
    host, reg = storage.hosts.find_with_vnf("h1", "fw")
    assert host == storage.hosts.find("h1") and reg == storage.enrollments.registration("h1", "fw")
    assert reg is not None and (reg.enroll_rule, reg.bound_public_key_sha256, reg.bound_at) == ("r", "k", AT)
    assert storage.hosts.find_with_vnf("h2", "fw")[1] == storage.enrollments.registration("h2", "fw")
    assert storage.hosts.find_with_vnf("h1", "ids") == (storage.hosts.find("h1"), None)


def test_registered_agrees_with_find_with_vnf_without_building_records(storage: Storage) -> None:
    def full(host: str, vnf: str | None) -> tuple[bool, bool]:
        record, reg = storage.hosts.find_with_vnf(host, vnf) if vnf is not None else (storage.hosts.find(host), None)
        return record is not None, reg is not None

    storage.hosts.add("h1", "https://h1:1", None, at=AT)
    storage.hosts.add("h2", None, "strict", at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    storage.enrollments.register_vnf("h2", "ids", enroll_rule="r", by="admin", at=AT)
    storage.enrollments.bind("h1", "fw", public_key_sha256="k", mrenclave="m", at=AT)
    cases = [(h, v) for h in ("h1", "h2", "h3", "", "h1' OR '1'='1") for v in ("fw", "ids", "x", "", "fw%", None)]
    for host, vnf in cases:
        assert storage.hosts.registered(host, vnf) == full(host, vnf), (host, vnf)
    assert storage.hosts.registered("h1", "fw") == (True, True)
    assert storage.hosts.registered("h1", "ids") == (True, False)  # another host's name
    assert storage.hosts.registered("h3", "fw") == (False, False)
    assert storage.hosts.registered("h2") == (True, False)
    storage.enrollments.remove_vnf("h1", "fw")
    assert storage.hosts.registered("h1", "fw") == (True, False)
    storage.hosts.remove("h2")
    assert storage.hosts.registered("h2", "ids") == (False, False)
    with storage.transaction() as tx:  # inside a transaction too
        assert tx.hosts.registered("h1", "x") == (True, False)


def _bind(storage: Storage, vnf: str, key: str, mrenclave: str, register: bool, at: datetime) -> bool:
    """bind alone, in a write (the name is registered already: ``register`` is False)."""
    assert not register

    def fn(tx: object) -> bool:
        return tx.enrollments.bind("h1", vnf, public_key_sha256=key, mrenclave=mrenclave, at=at)  # type: ignore[attr-defined, no-any-return]

    return storage.write(fn)


@pytest.mark.parametrize(
    ("how", "register"),
    [(_bind_enrolled, True), (_bind_enrolled, False), (_bind, False)],
    ids=["bind_enrolled-registering", "bind_enrolled-registered", "bind-registered"],
)
def test_concurrent_binds_of_one_name_let_exactly_one_enclave_have_it(
    storage: Storage, how: Callable[[Storage, str, str, str, bool, datetime], bool], register: bool
) -> None:
    """Eight enclaves race for one name (bind_enrolled registering it or finding it registered,
    or a plain bind of the registered name): one wins, and the registration is bound to its key."""
    storage.hosts.add("h1", None, None, at=AT)
    if not register:
        storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    won: list[str] = []
    lock = threading.Lock()

    def bind(key: str) -> None:
        if how(storage, "fw", key, "m", register, AT):
            with lock:
                won.append(key)

    threads = [threading.Thread(target=bind, args=(f"k{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reg = storage.enrollments.registration("h1", "fw")
    assert len(won) == 1 and reg is not None and reg.bound_public_key_sha256 == won[0]


def test_a_new_certificate_supersedes_the_active_one_and_revocation_reaches_the_live_ones(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    first = storage.enrollments.record_enrollment(enrollment("0a", audit_id=audit(storage)))
    later = AT + timedelta(minutes=10)
    second = storage.enrollments.record_enrollment(enrollment("0b", audit_id=audit(storage), at=later))
    assert second > first
    old, new = storage.enrollments.enrollments(host="h1", vnf="fw")
    assert (old.serial, old.status, old.superseded_by, old.superseded_at) == (
        "0a",
        EnrollmentStatus.SUPERSEDED,
        "0b",
        later,
    )
    assert (new.status, new.issued_at, new.not_after) == ("active", later, later + timedelta(hours=1))
    assert [e.serial for e in storage.enrollments.enrollments(active_only=True)] == ["0b"]
    # A renewed VNF still holds its previous certificate until it expires: both are live.
    assert [e.serial for e in storage.enrollments.live(host="h1", vnf=None, at=later)] == ["0a", "0b"]
    assert [e.serial for e in storage.enrollments.live(host="h1", vnf="fw", at=AT + timedelta(hours=2))] == ["0b"]
    # Under another host name, the same platform's certificates are reached through the platform.
    assert [e.serial for e in storage.enrollments.live(host="h9", vnf=None, at=later, platform_key="dcap-pck:aa")] == [
        "0a", "0b"
    ]  # fmt: skip
    storage.enrollments.mark_revoked("0b", at=later, reason="keyCompromise")
    revoked = storage.enrollments.by_serial("0b")
    assert revoked is not None and (revoked.status, revoked.revoked_at, revoked.revoke_reason) == (
        EnrollmentStatus.REVOKED, later, "keyCompromise"
    )  # fmt: skip
    assert storage.enrollments.by_serial("ff") is None
    assert storage.enrollments.enclave_claims("0a") == {"mrenclave": "m" * 64}
    assert storage.enrollments.enclave_claims("ff") is None
    assert revoked.to_json()["issued_at"] == "2026-03-01T12:10:00Z" and revoked.to_json()["status"] == "revoked"


def test_vnf_decisions_and_listing(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    storage.enrollments.register_vnf("h1", "fw", enroll_rule="r", by="admin", at=AT)
    storage.enrollments.register_vnf("h1", "ids", enroll_rule="r", by="admin", at=AT)
    assert storage.enrollments.vnf_known("fw") and storage.enrollments.vnf_known("fw", host="h1")
    assert not storage.enrollments.vnf_known("fw", host="h2") and not storage.enrollments.vnf_known("nope")
    storage.enrollments.record_vnf("h1", "fw", status=VnfStatus.ENROLLED, at=AT, mrenclave="m", public_key_sha256="k",
                                   reasons=[])  # fmt: skip
    storage.enrollments.record_vnf("h1", "fw", status=VnfStatus.REVOKED, at=AT, mrenclave=None, public_key_sha256=None,
                                   reasons=[{"rule": "revocation"}])  # fmt: skip
    storage.enrollments.record_enrollment(enrollment("0a", audit_id=audit(storage)))
    fw, ids = sorted(storage.enrollments.vnfs("h1"), key=lambda v: v.name)
    assert (fw.status, fw.mrenclave, fw.public_key_sha256, fw.active_certificates) == ("revoked", "m", "k", 1)
    assert fw.reasons == ({"rule": "revocation"},) and ids.status is VnfStatus.REGISTERED
    assert fw.to_json()["vnf"] == "fw" and fw.to_json()["last_attested_at"] == "2026-03-01T12:00:00Z"
    assert [v.name for v in storage.enrollments.vnfs()] == ["fw", "ids"] and storage.enrollments.vnfs("h2") == []


def test_a_serial_is_recorded_once(storage: Storage) -> None:
    storage.enrollments.record_enrollment(enrollment("0a", audit_id=audit(storage)))
    with pytest.raises(Exception):  # noqa: B017 (engine's integrity error: the unique index holds)
        storage.enrollments.record_enrollment(enrollment("0a", audit_id=audit(storage), vnf="other"))
    assert len(storage.enrollments.enrollments()) == 1


# -- certificates --------------------------------------------------------------------------------------------
def test_certificate_records_of_each_ca_are_apart(storage: Storage) -> None:
    vnf, admin = storage.certificates(), storage.certificates(CertificateAuthorityKind.ADMIN)
    assert (vnf.kind, admin.kind) == (CertificateAuthorityKind.VNF, CertificateAuthorityKind.ADMIN)
    a = vnf.record_issued(certificate(0x0A), at=AT)
    assert (a.serial, a.subject, a.issued_at, a.not_after) == (0x0A, "CN=vnf-a", AT, AT + timedelta(days=1))
    assert vnf.get(0x0A) == a and admin.get(0x0A) is None
    with pytest.raises(InputError, match="already recorded"):
        vnf.record_issued(certificate(0x0A), at=AT)
    admin.record_issued(certificate(0x0A, cn="admin"), at=AT)  # the other CA's serials are its own
    assert [r.subject for r in admin.list()] == ["CN=admin"]


def test_revocation_keeps_the_first_and_moves_the_marker(storage: Storage) -> None:
    records = storage.certificates()
    records.record_issued(certificate(0x0A), at=AT)
    records.record_issued(certificate(0x0B, days=2), at=AT + timedelta(seconds=1))
    records.record_issued(certificate(0x0C, cn="other"), at=AT + timedelta(seconds=2))
    assert records.revocation_marker() == (0, None)
    later = AT + timedelta(minutes=5, microseconds=123)
    first = records.revoke(0x0A, "key-compromise", later)
    assert (first.revoked_at, first.revocation_reason) == (later, "keyCompromise")
    again = records.revoke(0x0A, "superseded", later + timedelta(minutes=1))
    assert (again.revoked_at, again.revocation_reason) == (later, "keyCompromise")  # the first stands
    assert records.revocation_marker() == (1, later)
    records.revoke(0x0B, "superseded", later + timedelta(minutes=1))
    assert records.revocation_marker() == (2, later + timedelta(minutes=1))
    with pytest.raises(InputError, match="no certificate with serial ff"):
        records.revoke(0xFF, "superseded", later)
    with pytest.raises(InputError, match="unknown revocation reason"):
        records.revoke(0x0C, "because", later)
    assert [r.serial for r in records.list()] == [0x0A, 0x0B, 0x0C]
    assert [r.serial for r in records.list(revoked=True)] == [0x0A, 0x0B]
    assert [r.serial for r in records.list(revoked=False)] == [0x0C]
    assert [r.serial for r in records.list(subject="CN=other")] == [0x0C]
    assert [r.serial for r in records.revoked(unexpired_at=AT + timedelta(days=1, hours=1))] == [0x0B]
    assert first.status(later) is CertificateStatus.REVOKED and first.status(AT) is CertificateStatus.VALID


# -- nonces ---------------------------------------------------------------------------------------------------
def test_a_spent_nonce_is_recorded_once_and_expired_ones_are_purged(storage: Storage) -> None:
    def spent(selector: str, at: datetime, expires: datetime) -> NonceRecord:
        return NonceRecord(selector, bytes.fromhex(selector) * 4, NoncePurpose.ENCLAVE, "h1", "fw", AT, expires, at)

    first = spent("55" * 8, AT + timedelta(seconds=1), AT + timedelta(seconds=60))
    assert storage.nonces.find("55" * 8) is None
    assert storage.nonces.spend(first)
    assert storage.nonces.find("55" * 8) == first
    assert not storage.nonces.spend(spent("55" * 8, AT + timedelta(seconds=2), AT + timedelta(seconds=60)))  # a replay
    assert storage.nonces.find("55" * 8) == first  # the first use stays recorded
    late = spent("66" * 8, AT + timedelta(seconds=70), AT + timedelta(seconds=600))
    assert storage.nonces.spend(late, purge_expired_before=AT + timedelta(seconds=61))  # drops the first
    assert storage.nonces.find("55" * 8) is None and storage.nonces.find("66" * 8) == late
    assert storage.nonces.purge(expired_before=AT + timedelta(seconds=601)) == 1
    assert storage.nonces.find("66" * 8) is None


def test_concurrent_spends_of_one_nonce_let_exactly_one_through(storage: Storage) -> None:
    record = NonceRecord("77" * 8, b"\x07" * 32, NoncePurpose.HOST, "h1", None, AT, AT + timedelta(60), AT)
    results: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        ok = storage.write(lambda tx: tx.nonces.spend(record))
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


# -- audit -----------------------------------------------------------------------------------------------------
def test_audit_records_come_back_typed_and_in_order(storage: Storage) -> None:
    ids = [
        storage.audit.record(
            at=AT + timedelta(minutes=i),
            actor="a",
            action=f"step-{i}",
            allowed=i % 2 == 0,
            host="h1",
            vnf=None,
            policy_version="p",
            simulated=i == 1,
            evidence={"i": i},
            reasons=[{"rule": "r", "i": i}],
        )
        for i in range(5)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 5
    records = storage.audit.records()
    assert [r.action for r in records] == [f"step-{i}" for i in range(5)]
    assert records[1].simulated and not records[1].allowed and records[1].at == AT + timedelta(minutes=1)
    assert records[1].evidence == {"i": 1} and records[1].reasons == ({"rule": "r", "i": 1},)
    assert [r.action for r in storage.audit.records(since=AT + timedelta(minutes=3))] == ["step-3", "step-4"]
    assert [r.action for r in storage.audit.records(limit=2)] == ["step-3", "step-4"]
    got = storage.audit.get(ids[2])
    assert got is not None and got.to_json()["at"] == "2026-03-01T12:02:00Z" and storage.audit.get(10**9) is None


# -- TPM pins ----------------------------------------------------------------------------------------------------
def test_a_tpm_pin_keeps_its_rounds_until_registered_again(storage: Storage) -> None:
    assert storage.tpm.get("h1") is None
    storage.tpm.pin("h1", ak_public=b"\x00\x01ak", ak_name="000b" + "aa" * 32, ak_spki_sha256="s" * 64,
                    ek_spki_sha256="e" * 64, ek_trust="pinned", at=AT)  # fmt: skip
    pin = storage.tpm.get("h1")
    assert pin is not None and pin.ak_public == b"\x00\x01ak" and pin.registered_at == AT and pin.last_clock is None
    clock = ClockInfo(1000, 2, 0, True)
    storage.tpm.record_round("h1", clock=clock, firmware=7, boot_pcrs={"sha256": {0: "aa"}})
    storage.tpm.record_round("h1", clock=ClockInfo(2000, 2, 0, True), firmware=7, boot_pcrs={"sha256": {0: "bb"}})
    pin = storage.tpm.get("h1")
    assert pin is not None and pin.last_clock == ClockInfo(2000, 2, 0, True) and pin.last_firmware == 7
    assert pin.boot_pcrs == {"sha256": {0: "aa"}}  # the first verified round's baseline
    storage.tpm.pin("h1", ak_public=b"new", ak_name="n", ak_spki_sha256="s", ek_spki_sha256="e", ek_trust="unsafe",
                    at=AT)  # fmt: skip
    pin = storage.tpm.get("h1")
    assert pin is not None and pin.ak_public == b"new" and pin.last_clock is None and pin.boot_pcrs is None


# -- transactions ----------------------------------------------------------------------------------------------
def test_one_transaction_records_all_or_nothing(storage: Storage) -> None:
    storage.hosts.add("h1", None, None, at=AT)
    spent = NonceRecord("44" * 8, b"\x04" * 32, NoncePurpose.HOST, "h1", None, AT, AT + timedelta(60), AT)
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        assert tx.nonces.spend(spent)
        audit_id = tx.audit.record(at=AT, actor="a", action="enroll", allowed=True)
        tx.certificates().record_issued(certificate(0x0D), at=AT)
        tx.enrollments.record_enrollment(enrollment("0d", audit_id=audit_id))
        tx.hosts.mark_untrusted("h1", [])
        raise RuntimeError("crash before commit")
    assert storage.audit.records() == [] and storage.certificates().get(0x0D) is None
    assert storage.enrollments.enrollments() == [] and storage.hosts.get("h1").status == "unknown"
    assert storage.write(lambda tx: tx.nonces.spend(spent))  # the nonce was not spent
    with storage.transaction() as tx:
        tx.certificates().record_issued(certificate(0x0E), at=AT)
        tx.enrollments.record_enrollment(enrollment("0e", audit_id=tx.audit.record(at=AT, actor="a", action="e",
                                                                                   allowed=True)))  # fmt: skip
    assert storage.certificates().get(0x0E) is not None and storage.enrollments.by_serial("0e") is not None


def test_a_failing_write_undoes_only_its_own_changes(storage: Storage) -> None:
    errors: list[str] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        def fn(tx: object) -> int:
            audit_id: int = tx.audit.record(at=AT, actor="a", action=f"w{i}", allowed=True)  # type: ignore[attr-defined]
            if i % 3 == 0:
                raise ValueError(f"refused {i}")
            return audit_id

        try:
            storage.write(fn)
        except ValueError as e:
            with lock:
                errors.append(str(e))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.action for r in storage.audit.records()) == sorted(f"w{i}" for i in range(1, 13) if i % 3)
    assert sorted(errors) == sorted(f"refused {i}" for i in (3, 6, 9, 12))
