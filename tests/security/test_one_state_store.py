"""Issue 11, item 5 (two databases; admin certificates), attacked for real.

What once worked: `ftrust ca` used ``ftrust.db`` while the VM used ``ftrust.sqlite3``, so
`ftrust ca revoke` never reached the VM's CRL or OCSP (OCSP said ``unknown`` and the controller
accepted the certificate), admin certificates could not be revoked, and `ca list` was empty next to
a running VM. Admin certificates came from the VNF CA, which Floodlight trusts.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from floodlight_trust import clock
from floodlight_trust.errors import VerificationError
from floodlight_trust.floodlight import bridge, client
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.manager.client import VmClient
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.pki.profile import CertificateProfile, KeyType
from tests.support.attacks import count, crl_serials, ocsp_status
from tests.support.floodlight import STORE_PASSWORD, write_keystore
from tests.support.world import ADMIN_KEY_PASSWORD, World, ca_cli, vm_cli


def enrolled(world: World, vnf: str) -> dict:  # type: ignore[type-arg]
    host = world.start_host()
    host.add_vnf(vnf)
    doc = world.admin.enroll(host.name, vnf)
    assert doc["allowed"], doc["reasons"]
    return doc | {"host_name": host.name}


def admin_client(world: World, cert: Path, key: Path) -> VmClient:
    return VmClient(
        world.service.api_url,
        server_certificate=world.service.tls_certificate,
        client_certificate=(str(cert), str(key)),
        client_key_password=ADMIN_KEY_PASSWORD,
    )


def test_a_cli_revocation_reaches_the_running_vms_ocsp_and_crl_at_once(world: World) -> None:
    doc = enrolled(world, "vnf-fw-cli-revoked")
    listing = ca_cli(world, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert doc["serial"] in [r["serial"] for r in json.loads(listing.stdout)]  # `ca list` sees the VM's certificates
    assert ocsp_status(world, doc["certificate_chain"][0]) == ocsp.OCSPCertStatus.GOOD
    assert int(doc["serial"], 16) not in crl_serials(world)
    r = ca_cli(world, "revoke", doc["serial"], "--reason", "keyCompromise")
    assert r.returncode == 0, r.stderr
    # No restart, no republish command: the VM's next answers show it.
    assert ocsp_status(world, doc["certificate_chain"][0]) == ocsp.OCSPCertStatus.REVOKED
    assert int(doc["serial"], 16) in crl_serials(world)
    [e] = [e for e in world.admin.enrollments() if e["serial"] == doc["serial"]]
    assert e["status"] == "revoked"
    audit = [a for a in world.admin.audit() if a["actor"] == "cli:ca revoke"]
    assert audit and audit[-1]["evidence"]["serials"] == [doc["serial"]]
    # The next re-attestation round does not hand the VNF a fresh certificate behind the admin's back.
    [h] = world.admin.reattest(doc["host_name"])["hosts"]
    assert "vnf-fw-cli-revoked" not in h["renewed"]


def test_the_admin_api_refuses_an_admin_certificate_without_a_record(world: World, tmp_path: Path) -> None:
    key = generate_private_key(KeyType.EC_P256)
    profile = CertificateProfile(
        subject="CN=mallory,OU=ftrust-admin", san_uris=("urn:ftrust:admin:mallory",), validity_seconds=3600
    )
    key_path = tmp_path / "mallory.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(ADMIN_KEY_PASSWORD.reveal_bytes()),
        )
    )
    # 1. Signed by the admin CA's key but never recorded (a certificate the VM did not issue).
    unrecorded = world.service.admin_ca.sign(key.public_key(), profile, at=clock.now())
    # 2. Issued and recorded by the VNF CA with an admin SAN (`ftrust ca issue --san-uri urn:ftrust:admin:...`).
    vnf_ca_admin = world.ca.issue(key.public_key(), profile, at=clock.now()).certificate
    for cert in (unrecorded, vnf_ca_admin):
        path = tmp_path / "mallory.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        mallory = admin_client(world, path, key_path)
        try:
            with pytest.raises(VerificationError, match="no record"):
                mallory.hosts()
        finally:
            mallory.close()
    assert count(world, "SELECT COUNT(*) FROM manager_audit WHERE actor = 'admin:mallory'") == 0


def test_a_revoked_admin_certificate_is_refused(world: World, tmp_path: Path) -> None:
    cert, key = issue_admin_certificate(
        world.service.admin_ca, "bob", tmp_path, at=clock.now(), password=ADMIN_KEY_PASSWORD
    )
    bob = admin_client(world, cert, key)
    try:
        assert isinstance(bob.hosts(), list)
        serial = format(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number, "x")
        listing = ca_cli(world, "list", "--admin", "--json")
        assert serial in [r["serial"] for r in json.loads(listing.stdout)]
        r = ca_cli(world, "revoke", serial, "--reason", "keyCompromise")
        assert r.returncode == 0 and "admin certificate" in r.stdout, r.stderr
        with pytest.raises(VerificationError, match="admin certificate is revoked"):
            bob.hosts()
    finally:
        bob.close()


def test_admin_certificates_come_from_their_own_ca_with_a_short_lifetime(world: World) -> None:
    out = world.tmp / "admin-carol"
    r = vm_cli(world, "hosts", "list")  # (the admin alice works)
    assert r.returncode == 0, r.stderr
    from tests.support.cli import ftrust
    from tests.support.world import ADMIN_KEY_ENV, write_config

    r = ftrust(
        "--config", str(write_config(world)), "vm", "admin-cert", "carol", "--out", str(out), "--json",
        env={**ADMIN_KEY_ENV, "FTRUST_CA_PASSWORD": "correct horse battery"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cert = x509.load_pem_x509_certificate((out / "carol.pem").read_bytes())
    assert cert.issuer == world.service.admin_ca.certificate.subject != world.ca.certificate.subject
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=30, minutes=1)
    cert.verify_directly_issued_by(world.service.admin_ca.certificate)
    # The admin CA's records are apart: the VNF CA's CRL never lists admin certificates.
    assert count(world, "SELECT COUNT(*) FROM pki_certificates WHERE subject LIKE '%OU=ftrust-admin%'") <= 1


def test_an_admin_certificate_is_no_credential_at_the_controller(
    world: World, tmp_path: Path, bridge_jar: Path
) -> None:
    keystore, server_pem = write_keystore(tmp_path, world.ca)  # what `floodlight provision` installs: the VNF CA
    from tests.support.world import enrolled_vnf

    vnf_cert, vnf_key = enrolled_vnf(world, tmp_path, "vnf-fw-controller")
    admin_cert, admin_key = world.tmp / "admin" / "alice.pem", world.tmp / "admin" / "alice.key"
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD, pkix_revocation=True, ocsp=True) as endpoint:
        vnf = client.check(endpoint.url, vnf_cert, vnf_key, server_pem, path=client.SWITCHES_PATH)
        assert vnf.accepted and vnf.status == 200, vnf
        admin = client.check(
            endpoint.url, admin_cert, admin_key, server_pem, path=client.SWITCHES_PATH, key_password=ADMIN_KEY_PASSWORD
        )
        assert admin.refused and not admin.accepted, admin
    # And the admin CA is not what the VM publishes for relying parties.
    assert requests.get(world.service.publish.url + "/ca.pem", timeout=10).content == world.ca.certificate_pem
