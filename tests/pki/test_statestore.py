"""One state store: `ftrust ca` and the VM open the same file; an older `ftrust ca` database is merged once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from floodlight_trust import clock
from floodlight_trust.config import from_mapping
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.secrets import Secret
from floodlight_trust.statestore import LEGACY_CA_DB, STATE_DB, open_admin_ca, open_ca, open_state
from floodlight_trust.storage.sqlite import SqliteStorage

PASSWORD = Secret("state store password", "test")


def test_records_of_an_older_ftrust_ca_database_are_merged_once(tmp_path: Path) -> None:
    config = from_mapping({"state": {"dir": str(tmp_path / "state")}})
    legacy = SqliteStorage(config.state_dir / LEGACY_CA_DB)
    ca = CertificateAuthority.init(
        config.state_path("ca", "dir"), PASSWORD, subject="CN=old CA", crl_url="http://127.0.0.1:9/crl.der",
        ocsp_url="http://127.0.0.1:9/ocsp", at=clock.now(), records=legacy.certificates(),
    )  # fmt: skip
    issued = ca.issue(generate_private_key().public_key(), CertificateProfile(subject="CN=vnf-old"), at=clock.now())
    legacy.close()
    db = open_state(config)
    assert (config.state_dir / STATE_DB).is_file() and not (config.state_dir / LEGACY_CA_DB).exists()
    assert (config.state_dir / (LEGACY_CA_DB + ".merged")).is_file()
    same = open_ca(config, PASSWORD, db)
    record = same.records.get(issued.serial) if same.records else None
    assert record is not None and record.subject == "CN=vnf-old"
    assert open_state(config).query("SELECT COUNT(*) FROM pki_certificates")[0][0] == 1  # once


def test_the_admin_ca_is_another_ca_with_records_of_its_own(tmp_path: Path) -> None:
    config = from_mapping({"state": {"dir": str(tmp_path / "state")}})
    db = open_state(config)
    CertificateAuthority.init(
        config.state_path("ca", "dir"), PASSWORD, subject="CN=VNF CA", crl_url="http://127.0.0.1:9/crl.der",
        ocsp_url="http://127.0.0.1:9/ocsp", at=clock.now(), records=db.certificates(),
    )  # fmt: skip
    admin = open_admin_ca(config, PASSWORD, db, create_at=clock.now())
    vnf = open_ca(config, PASSWORD, db)
    assert admin.certificate.subject != vnf.certificate.subject
    issued = admin.issue(
        generate_private_key().public_key(), CertificateProfile(subject="CN=a,OU=ftrust-admin"), at=clock.now()
    )
    admin.revoke(issued.serial, "keyCompromise", at=clock.now())
    assert vnf.records is not None and vnf.records.get(issued.serial) is None
    assert issued.serial not in {r.serial_number for r in vnf.crl(at=clock.now(), next_update=timedelta(minutes=5))}
    assert open_admin_ca(config, PASSWORD, db).certificate == admin.certificate  # opened, not created again
