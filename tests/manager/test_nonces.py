"""The nonce token (manager/nonces.py): what it says of itself, who can check it, and its spending.

The attacks on it over HTTPS are tests/security/test_nonces.py; spending on both engines and across
replicas is tests/storage (contract, PostgreSQL) and tests/replicas/test_shared_state.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from floodlight_trust.manager.nonces import Nonces
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.records import NoncePurpose
from floodlight_trust.storage.sqlite import SqliteStorage

AT = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture
def storage(tmp_path: Path) -> SqliteStorage:
    return SqliteStorage(tmp_path / "state.sqlite3")


def test_an_issued_nonce_is_found_with_its_purpose_host_vnf_and_exact_expiry(storage: SqliteStorage) -> None:
    nonces = Nonces(storage, ttl_seconds=60, key=lambda: KEY)
    issued = nonces.issue("enclave", "h1", "fw", at=AT)
    assert len(issued.value) == 32 and issued.expires_at == AT + timedelta(seconds=60)
    record = nonces.find(issued.value, host="h1", vnf="fw")
    assert record is not None
    assert (record.purpose, record.host, record.vnf, record.used_at) == (NoncePurpose.ENCLAVE, "h1", "fw", None)
    assert record.expires_at == issued.expires_at and record.issued_at == AT
    # Bound to its host and VNF: for anything else it is not this VM's nonce.
    assert nonces.find(issued.value, host="h2", vnf="fw") is None
    assert nonces.find(issued.value, host="h1", vnf="fw2") is None
    assert nonces.find(issued.value, host="h1") is None
    # Without a VNF it answers evidence of any VNF of its host; a host nonce names no VNF.
    free = nonces.issue("enclave", "h1", at=AT)
    found = nonces.find(free.value, host="h1", vnf="any")
    assert found is not None and found.vnf is None
    host = nonces.find(nonces.issue("host", "h1", at=AT).value, host="h1")
    assert host is not None and host.purpose is NoncePurpose.HOST
    assert nonces.find(issued.value[:31], host="h1", vnf="fw") is None
    assert storage.query("SELECT COUNT(*) FROM manager_nonces")[0][0] == 0  # issuing wrote nothing


def test_a_nonce_is_spent_once_and_then_found_spent(storage: SqliteStorage) -> None:
    nonces = Nonces(storage, ttl_seconds=60, key=lambda: KEY)
    value = nonces.issue("enclave", "h1", "fw", at=AT).value
    spent_at = AT + timedelta(seconds=5)
    assert storage.write(lambda tx: nonces.burn(tx, value, host="h1", vnf="fw", at=spent_at))
    assert not storage.write(lambda tx: nonces.burn(tx, value, host="h1", vnf="fw", at=spent_at))
    record = nonces.find(value, host="h1", vnf="fw")
    assert record is not None and record.used_at == spent_at
    # Something that is not one of this VM's nonces is never recorded as spent.
    other = Nonces(storage, ttl_seconds=60, key=lambda: b"o" * 32).issue("enclave", "h1", "fw", at=AT).value
    assert not storage.write(lambda tx: nonces.burn(tx, other, host="h1", vnf="fw", at=spent_at))
    assert storage.query("SELECT COUNT(*) FROM manager_nonces")[0][0] == 1


def test_replicas_holding_one_ca_check_each_others_nonces_and_another_ca_does_not(tmp_path: Path) -> None:
    password = Secret("nonce key test", "test")
    urls = {"crl_url": "http://127.0.0.1:9/crl.der", "ocsp_url": "http://127.0.0.1:9/ocsp"}
    first = SqliteStorage(tmp_path / "a.sqlite3")
    CertificateAuthority.init(tmp_path / "ca", password, subject="CN=a", at=AT, records=first.certificates(), **urls)
    a = CertificateAuthority.open(tmp_path / "ca", password, first.certificates(), **urls)
    b = CertificateAuthority.open(tmp_path / "ca", password, first.certificates(), **urls)
    second = SqliteStorage(tmp_path / "b.sqlite3")
    CertificateAuthority.init(tmp_path / "ca2", password, subject="CN=b", at=AT, records=second.certificates(), **urls)
    c = CertificateAuthority.open(tmp_path / "ca2", password, second.certificates(), **urls)
    assert a.nonce_key() == b.nonce_key() != c.nonce_key()
    assert len(a.nonce_key()) == 32
    value = Nonces(first, ttl_seconds=60, key=a.nonce_key).issue("host", "h1", at=AT).value
    assert Nonces(first, ttl_seconds=60, key=b.nonce_key).find(value, host="h1") is not None
    assert Nonces(first, ttl_seconds=60, key=c.nonce_key).find(value, host="h1") is None


def test_the_mac_is_hmac_sha256_of_the_documented_message_under_the_current_key(storage: SqliteStorage) -> None:
    """The keyed-once MAC context gives the one-shot HMAC's bytes, and a changed key (a rotated CA
    key) is used at once: the old key's nonces stop verifying."""
    import hmac

    from floodlight_trust.manager.nonces import _LABEL, _mac

    keys = [KEY]
    nonces = Nonces(storage, ttl_seconds=60, key=lambda: keys[0])
    for host, vnf in (("h1", "fw"), ("h1", None), ("höst-ü", "vnf/ünï"), ("", "")):
        value = nonces.issue("enclave", host, vnf, at=AT).value
        h, v = host.encode(), (vnf or "").encode()
        message = _LABEL + value[:16] + len(h).to_bytes(4, "big") + h + len(v).to_bytes(4, "big") + v
        assert value[16:] == hmac.digest(KEY, message, "sha256")[:16] == _mac(KEY, value[:16], host, vnf)
        assert nonces.find(value, host=host, vnf=vnf if vnf is not None else "any") is not None
    old = nonces.issue("host", "h1", at=AT).value
    keys[0] = b"r" * 32
    assert nonces.find(old, host="h1") is None
    new = nonces.issue("host", "h1", at=AT).value
    assert new[16:] == _mac(b"r" * 32, new[:16], "h1", None) and nonces.find(new, host="h1") is not None
