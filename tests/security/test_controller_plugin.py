"""Attacks on the controller-side plugin, performed over real HTTPS on loopback against the JDK
endpoint running the plugin's classes (and the VM's revocation stream); each refusal asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.serialization import pkcs12

from floodlight_trust import clock
from floodlight_trust.manager.admins import issue_admin_certificate
from floodlight_trust.pki.grants import HttpMethod, RestGrant
from tests.support import plugin as ps
from tests.support.floodlight import make_ca
from tests.support.world import ADMIN_KEY_PASSWORD, enrolled_vnf


@pytest.fixture(scope="module")
def plugged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ps.Plugged]:
    yield from ps.plugged(tmp_path_factory.mktemp("plugin-attacks"))


def test_an_admin_certificate_of_the_vms_ca_is_refused_by_the_controller(plugged: ps.Plugged, tmp_path: Path) -> None:
    # Admin certificates come from the VM's admin CA, which the controller's trust bundle never holds.
    cert, key = issue_admin_certificate(
        plugged.world.service.admin_ca, "mallory", tmp_path, at=clock.now(), password=ADMIN_KEY_PASSWORD
    )
    c = ps.TlsClient(plugged.endpoint.url, cert, key, plugged.files.server_pem, key_password=ADMIN_KEY_PASSWORD)
    assert c.request("GET", "/wm/core/health/json") == 0
    ps.wait_for_log(plugged.endpoint, "does not chain to a CA of the trust bundle", timeout=5)


def test_the_controllers_stream_credential_is_no_vnf_certificate(plugged: ps.Plugged, tmp_path: Path) -> None:
    key, cert, _ = pkcs12.load_key_and_certificates(
        plugged.files.controller_p12.read_bytes(), ps.CONTROLLER_PASSWORD.reveal_bytes()
    )
    assert key is not None and cert is not None
    cert_path, key_path = ps.write_pem(tmp_path, "controller", cert, key)
    c = ps.TlsClient(plugged.endpoint.url, cert_path, key_path, plugged.files.server_pem)
    assert c.request("GET", "/wm/core/health/json") == 0
    ps.wait_for_log(plugged.endpoint, "urn:ftrust:controller:floodlight", timeout=5)


def test_a_stranger_ca_cannot_grant_itself_rest_access(plugged: ps.Plugged, tmp_path: Path) -> None:
    stranger = make_ca(tmp_path, name="CN=stranger CA")
    cert, key = ps.issue_vnf(stranger, tmp_path, "vnf-evil", (RestGrant(HttpMethod.POST, "/wm/**"),))
    c = ps.TlsClient(plugged.endpoint.url, cert, key, plugged.files.server_pem)
    assert c.request("POST", "/wm/staticflowpusher/json", body=b"{}") == 0
    ps.wait_for_log(plugged.endpoint, "does not chain to a CA of the trust bundle", timeout=5)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/wm/core/../firewall/rules/json", "path has a dot segment"),
        ("/wm/core/%2e%2e/firewall/rules/json", "path has percent-encoding"),
        ("/wm/core/..%2ffirewall/rules/json", "path has percent-encoding"),
        ("/wm/core//../firewall/rules/json", "path has an empty segment"),
        ("/wm/core/..;/firewall/rules/json", "path has a dot segment"),
    ],
)
def test_path_tricks_do_not_widen_a_grant(plugged: ps.Plugged, path: str, reason: str) -> None:
    monitor = plugged.client(f"vnf-mon-trick-{abs(hash(path)) % 10_000}")
    assert monitor.request("GET", "/wm/core/health/json") == 200  # its grant: GET /wm/core/**
    assert monitor.request("GET", path) == 403
    ps.wait_for_log(plugged.endpoint, f'path={path} status=403 refused="{reason}', timeout=5)


def test_a_monitor_cannot_delete_flows(plugged: ps.Plugged) -> None:
    monitor = plugged.client("vnf-mon-delete")
    assert monitor.request("DELETE", "/wm/staticflowpusher/json") == 403
    assert monitor.request("POST", "/wm/staticflowpusher/json", body=b"{}") == 403


def test_the_revocation_stream_needs_a_controller_or_admin_certificate(plugged: ps.Plugged, tmp_path: Path) -> None:
    url = plugged.world.service.api_url + "/v1/revocations/stream"
    verify = str(plugged.world.service.tls_certificate)
    anonymous = requests.get(url, verify=verify, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "Unauthorized"
    vnf_cert, vnf_key = enrolled_vnf(plugged.world, tmp_path, "vnf-mon-subscriber")
    as_vnf = requests.get(url, verify=verify, cert=(str(vnf_cert), str(vnf_key)), timeout=10)
    assert as_vnf.status_code == 403 and "no admin role" in as_vnf.json()["error"]["message"]


def test_a_revoked_controller_certificate_cannot_subscribe(plugged: ps.Plugged, tmp_path: Path) -> None:
    from cryptography import x509

    from floodlight_trust.manager.revocation_feed import issue_controller_credential

    p12, cert_pem = issue_controller_credential(
        plugged.world.ca, "old-controller", tmp_path, at=clock.now(), password=ps.CONTROLLER_PASSWORD
    )
    serial = x509.load_pem_x509_certificate(cert_pem.read_bytes()).serial_number
    plugged.world.ca.revoke(serial, "keyCompromise", at=clock.now())
    key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), ps.CONTROLLER_PASSWORD.reveal_bytes())
    assert key is not None and cert is not None
    cert_path, key_path = ps.write_pem(tmp_path, "old-controller", cert, key)
    r = requests.get(
        plugged.world.service.api_url + "/v1/revocations/stream",
        verify=str(plugged.world.service.tls_certificate),
        cert=(str(cert_path), str(key_path)),
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["error"]["message"] == "controller certificate is revoked"


def test_a_stream_password_file_readable_by_others_is_refused(plugged: ps.Plugged, tmp_path: Path) -> None:
    """The trust provider never reads a secret others can read: no subscription, and it says why."""
    files = ps.plugin_files(tmp_path / "loose", plugged.world.ca)
    files.controller_password.chmod(0o644)
    config = files.config(plugged.world.service.api_url, plugged.world.service.tls_certificate, staleness_seconds=1)
    with ps.endpoint(files, config) as ep:
        ps.wait_for_log(ep, "is readable by group or others (chmod 600 it)", timeout=30)
        assert ps.SUBSCRIBED not in ep.log_text()
