"""The deployment's one state store, and the two CAs opened on it.

Every command and the VM open the same storage (the state file ``storage.sqlite.STATE_FILE`` in
``state.dir``): `ftrust ca` revokes in the very records the VM's CRL and OCSP answer from, and
`ftrust ca list` shows what the VM issued. An older `ftrust ca` kept its records in a file of its
own (``storage.sqlite.LEGACY_CA_FILE``); they are merged in once.

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
from floodlight_trust.secrets import Secret, load_secret
from floodlight_trust.storage.engine import MigrationReport, migrate_storage, open_storage
from floodlight_trust.storage.records import CertificateAuthorityKind
from floodlight_trust.storage.sqlite import LEGACY_CA_FILE, STATE_FILE, SqliteStorage
from floodlight_trust.storage.stores import Storage
from floodlight_trust.storage.url import SqliteUrl, StorageUrl, parse_storage_url

log = logging.getLogger("floodlight_trust.statestore")

STATE_DB = STATE_FILE
LEGACY_CA_DB = LEGACY_CA_FILE  # where `ftrust ca` kept its records before there was one store
ADMIN_CA_SUBJECT = "CN=floodlight-trust admin CA,OU=ftrust-admin"


def storage_url(config: Config) -> StorageUrl:
    """Where ``config``'s state lives: ``storage.url``, or the SQLite state file in ``state.dir``.

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


def open_state(config: Config) -> Storage:
    """The state store of ``config``'s deployment on the engine ``storage.url`` names (created and
    migrated on first use; a SQLite file is 0600)."""
    url = storage_url(config)
    storage = open_storage(
        url,
        pool_size=config.get("storage", "pool_size"),
        connect_timeout_seconds=config.get("storage", "connect_timeout_seconds"),
    )
    if isinstance(storage, SqliteStorage):
        _merge_legacy(config, storage)
    return storage


def _merge_legacy(config: Config, storage: SqliteStorage) -> None:
    legacy = config.state_dir / LEGACY_CA_DB
    if not legacy.is_file():
        return
    merged = storage.merge_legacy_certificates(legacy)
    done = legacy.with_name(LEGACY_CA_DB + ".merged")
    legacy.rename(done)
    log.warning("merged %d certificate record(s) from %s into %s (old file kept as %s)", merged, legacy, STATE_DB, done)


def migrate_state(config: Config) -> MigrationReport:
    """`ftrust vm migrate`: apply the migrations ``config``'s database lacks (under the engine's lock)."""
    return migrate_storage(
        storage_url(config),
        pool_size=config.get("storage", "pool_size"),
        connect_timeout_seconds=config.get("storage", "connect_timeout_seconds"),
    )


def open_ca(config: Config, password: Secret, db: Storage) -> CertificateAuthority:
    """The VNF CA of ``config`` with its records in ``db`` (the only way any command opens it)."""
    return CertificateAuthority.open(
        config.state_path("ca", "dir"),
        password,
        db.certificates(CertificateAuthorityKind.VNF),
        crl_url=config.get("ca", "crl_url"),
        ocsp_url=config.get("ca", "ocsp_url"),
    )


def open_admin_ca(
    config: Config, password: Secret, db: Storage, *, create_at: datetime | None = None
) -> CertificateAuthority:
    """The admin CA of ``config`` (records in ``db``'s admin table); with ``create_at``, created
    first if it does not exist yet (same key type and password as the VNF CA)."""
    directory = config.state_path("ca", "admin_dir")
    records = db.certificates(CertificateAuthorityKind.ADMIN)
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
