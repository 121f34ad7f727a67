"""The engines' dialects (storage/dialect.py): one statement text, spelled for each driver; times
written by either engine read back as the same UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.clock import format_time, parse_time
from floodlight_trust.storage.dialect import Dialect
from floodlight_trust.storage.postgres import POSTGRES
from floodlight_trust.storage.sqlite import SQLITE
from floodlight_trust.storage.stores import Storage

SHARED = "SELECT * FROM manager_enrollments WHERE ({text} IS NULL OR host = ?) AND serial = ?"
# 12:00:00.123456 at UTC+02:00
AT = datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


def test_one_statement_is_spelled_for_each_driver() -> None:
    assert SQLITE.sql(SHARED) == "SELECT * FROM manager_enrollments WHERE (? IS NULL OR host = ?) AND serial = ?"
    assert POSTGRES.sql(SHARED) == (
        "SELECT * FROM manager_enrollments WHERE (%s::text IS NULL OR host = %s) AND serial = %s"
    )
    assert POSTGRES.sql(SHARED) is POSTGRES.sql(SHARED)  # rendered once


def test_a_percent_sign_in_shared_sql_is_refused() -> None:
    # psycopg would read it as a placeholder; SQLite would not: the text would mean two things.
    for dialect in (SQLITE, POSTGRES):
        with pytest.raises(ValueError, match="must not contain '%'"):
            dialect.sql("SELECT * FROM manager_hosts WHERE name LIKE 'h%'")


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
def test_times_read_back_as_utc(dialect: Dialect) -> None:
    utc = AT.astimezone(UTC)
    assert dialect.time(dialect.to_seconds(AT)) == utc.replace(microsecond=0)  # manager times: to the second
    assert dialect.time(dialect.to_exact(AT)) == utc  # CA records: exact
    assert dialect.instant(dialect.to_instant(AT)) == utc
    for value in (dialect.time(dialect.to_exact(AT)), dialect.instant(dialect.to_instant(AT))):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert dialect.time_or_none(None) is None and dialect.instant_or_none(None) is None


def test_sqlite_keeps_the_text_and_numbers_it_always_wrote() -> None:
    # Existing databases: manager times as ISO text to the second, CA times with microseconds, instants as REAL.
    assert SQLITE.to_seconds(AT) == "2026-03-01T12:00:00Z"
    assert SQLITE.to_exact(AT) == "2026-03-01T12:00:00.123456Z"
    assert SQLITE.to_instant(AT) == AT.timestamp()
    assert SQLITE.time("2026-03-01T12:00:00+00:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)  # older rows' spelling


def test_the_same_calls_give_equal_records_on_both_engines(request: pytest.FixtureRequest) -> None:
    """One row-to-record path (storage/rows.py) over each engine's column types: a time with
    microseconds is kept to the second where the manager's times are, exactly in the CA's and
    nonces' records, on both engines alike."""
    from floodlight_trust.evidence.tpm.structures import ClockInfo
    from floodlight_trust.storage.records import HostAttestationRecord, NewEnrollment, NoncePurpose, NonceRecord
    from tests.storage.conftest import ENGINES
    from tests.storage.test_contract import certificate

    at = AT.astimezone(UTC)
    cert = certificate(0x0D)  # one signature for both (ECDSA signs with a fresh nonce each time)

    def record_everything(storage: Storage) -> tuple[object, ...]:
        storage.hosts.add("h1", "https://h1:1", "p", at=at, agent_tls_pem="pem")
        storage.hosts.record_attestation("h1", HostAttestationRecord(
            trusted=True, at=at, reasons=({"code": "c", "message": "m"},), policy_version="v1",
            platform_pck_sha256="aa", platform={"pck": "aa"}, ima_state_json="{}", ima_entries=3,
            platform_key="dcap-pck:aa", simulated=True))  # fmt: skip
        with storage.transaction() as tx:
            spent = NonceRecord("44" * 8, b"\x04" * 32, NoncePurpose.ENCLAVE, "h1", "fw", at, at + timedelta(60), at)
            assert tx.nonces.spend(spent)
            assert tx.enrollments.bind_enrolled("h1", "fw", public_key_sha256="k", mrenclave="m", at=at,
                                                register=("fw", "rule"))  # fmt: skip
            audit_id = tx.audit.record(at=at, actor="h1", action="enroll", allowed=True, host="h1", vnf="fw",
                                       policy_version="v1", simulated=True, evidence={"q": "x"}, reasons=[])  # fmt: skip
            tx.certificates().record_issued(cert, at=at)
            tx.enrollments.record_enrollment(NewEnrollment(
                host="h1", vnf="fw", serial="0d", certificate_sha256="c", public_key_sha256="k", key_mode="enclave",
                mrenclave="m", policy_version="v1", audit_id=audit_id, issued_at=at, not_after=at + timedelta(hours=1),
                enclave_claims={"mrenclave": "m"}, platform_key="dcap-pck:aa"))  # fmt: skip
        storage.certificates().revoke(0x0D, "key-compromise", at + timedelta(microseconds=7))
        storage.enrollments.mark_revoked("0d", at=at, reason="keyCompromise")
        storage.tpm.pin("h1", ak_public=b"\x00\x01", ak_name="n", ak_spki_sha256="a", ek_spki_sha256="e",
                        ek_trust="pinned", at=at)  # fmt: skip
        storage.tpm.record_round("h1", clock=ClockInfo(5, 1, 2, True), firmware=7, boot_pcrs={"sha256": {0: "00"}})
        return (
            storage.hosts.all(), storage.hosts.find_with_vnf("h1", "fw"), storage.enrollments.vnfs(),
            storage.enrollments.enrollments(), storage.enrollments.enclave_claims("0d"), storage.audit.records(),
            storage.certificates().list(), storage.certificates().revocation_marker(), storage.nonces.find("44" * 8),
            storage.tpm.get("h1"),
        )  # fmt: skip

    with ENGINES["sqlite"](request) as sqlite, ENGINES["postgresql"](request) as postgresql:
        on_sqlite, on_postgresql = record_everything(sqlite), record_everything(postgresql)
    assert on_sqlite == on_postgresql
    hosts, _, _, enrollments, _, audit, certificates, marker, nonce, _ = on_sqlite
    assert hosts[0].last_attested_at == at.replace(microsecond=0)  # a manager time: to the second
    assert enrollments[0].issued_at == at.replace(microsecond=0) and audit[0].at == at.replace(microsecond=0)
    assert certificates[0].issued_at == at and marker == (1, at + timedelta(microseconds=7))  # the CA's: exact
    assert nonce is not None and nonce.used_at == at


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=-7, minutes=-30))]),
    ),
    naive=st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(9998, 12, 30)),
)
def test_sqlite_writes_and_reads_times_as_the_plain_formulas_do(at: datetime, naive: datetime) -> None:
    """The short cuts of format_time, to_exact and the time readers (issue 15) give what
    ``astimezone(UTC)...isoformat().replace("+00:00", "Z")`` and parse_time give, for any time."""
    for value in (at, naive):
        utc = value.astimezone(UTC)
        seconds = utc.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        assert SQLITE.to_seconds(value) == format_time(value) == seconds
        assert SQLITE.to_exact(value) == utc.isoformat().replace("+00:00", "Z")
        for text in (SQLITE.to_seconds(value), SQLITE.to_exact(value), utc.isoformat(), value.isoformat()):
            read = SQLITE.time(text)
            assert read == parse_time(text) and read.tzinfo is UTC and read == SQLITE.time_or_none(text)
