"""The deployment's one state store, and the two CAs opened on it.

Every command and the VM open the same SQLite file (``<state.dir>/ftrust.sqlite3``): `ftrust ca`
revokes in the very records the VM's CRL and OCSP answer from, and `ftrust ca list` shows what the
VM issued. An older `ftrust ca` kept its records in ``ftrust.db``; they are merged in once.

Two issuing CAs: the VNF CA (``ca.dir``) whose certificate Floodlight trusts, and the admin CA
(``ca.admin_dir``) that issues only admin client certificates for the VM's API. Floodlight is never
given the admin CA, so an admin certificate is no VNF credential at the controller.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from floodlight_trust.config import Config
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.pki.records import ADMIN_TABLE, CertificateRecords
from floodlight_trust.secrets import Secret, load_secret
from floodlight_trust.storage.database import Database
from floodlight_trust.storage.url import SqliteUrl, StorageUrl, parse_storage_url

log = logging.getLogger("floodlight_trust.statestore")

STATE_DB = "ftrust.sqlite3"
LEGACY_CA_DB = "ftrust.db"  # where `ftrust ca` kept its records before there was one store
ADMIN_CA_SUBJECT = "CN=floodlight-trust admin CA,OU=ftrust-admin"


def storage_url(config: Config) -> StorageUrl:
    """Where ``config``'s state lives: ``storage.url``, or SQLite at ``<state.dir>/ftrust.sqlite3``.

    A PostgreSQL password comes from the URL (in a 0600 config, checked at load), else from
    ``storage.password_env`` when that variable is set, else from ``storage.password_file``; with
    none of them libpq's own sources apply (PGPASSWORD, ~/.pgpass, peer or certificate auth).
    """
    text = config.get("storage", "url")
    if text is None:
        return SqliteUrl(config.state_dir / STATE_DB)
    url = parse_storage_url(text, base_dir=config.base_dir)
    if isinstance(url, SqliteUrl) or url.password is not None:
        return url
    env, file = config.get("storage", "password_env"), config.path("storage", "password_file")
    if (env and os.environ.get(env)) or file is not None:
        return url.with_password(load_secret(env=env, file=file, what="database password"))
    return url


def open_state(config: Config) -> Database:
    """The state store of ``config``'s deployment (created on first use, 0600)."""
    db = Database(config.state_dir / STATE_DB)
    _merge_legacy(config, db)
    return db


def _merge_legacy(config: Config, db: Database) -> None:
    legacy = config.state_dir / LEGACY_CA_DB
    if not legacy.is_file():
        return
    CertificateRecords(db)  # the table exists
    db.query("ATTACH DATABASE ? AS legacy", (str(legacy),))  # SQLite attaches outside a transaction only
    with db.transaction() as tx:
        has = tx.execute("SELECT 1 FROM legacy.sqlite_master WHERE name = 'pki_certificates'").fetchone()
        merged = (
            tx.execute("INSERT OR IGNORE INTO pki_certificates SELECT * FROM legacy.pki_certificates").rowcount
            if has
            else 0
        )
    db.query("DETACH DATABASE legacy")
    done = legacy.with_name(LEGACY_CA_DB + ".merged")
    legacy.rename(done)
    log.warning("merged %d certificate record(s) from %s into %s (old file kept as %s)", merged, legacy, STATE_DB, done)


def open_ca(config: Config, password: Secret, db: Database) -> CertificateAuthority:
    """The VNF CA of ``config`` with its records in ``db`` (the only way any command opens it)."""
    return CertificateAuthority.open(
        config.state_path("ca", "dir"),
        password,
        CertificateRecords(db),
        crl_url=config.get("ca", "crl_url"),
        ocsp_url=config.get("ca", "ocsp_url"),
    )


def open_admin_ca(
    config: Config, password: Secret, db: Database, *, create_at: datetime | None = None
) -> CertificateAuthority:
    """The admin CA of ``config`` (records in ``db``'s admin table); with ``create_at``, created
    first if it does not exist yet (same key type and password as the VNF CA)."""
    directory = config.state_path("ca", "admin_dir")
    records = CertificateRecords(db, table=ADMIN_TABLE)
    urls = {"crl_url": config.get("ca", "crl_url"), "ocsp_url": config.get("ca", "ocsp_url")}
    if create_at is not None and not (directory / "ca.cert.pem").exists():
        return CertificateAuthority.init(
            directory,
            password,
            key_type=config.get("ca", "key_type"),
            subject=ADMIN_CA_SUBJECT,
            at=create_at,
            records=records,
            **urls,
        )
    return CertificateAuthority.open(directory, password, records, **urls)
