"""Issue 17: the controller-side plugin, through the JDK endpoint running the same classes as the
Floodlight module (trust provider loaded by its JVM flags, enforcement point before every route).

Measured: the delay from the revocation decision (``VerificationManager.revoke`` returning) to the
first refusal of a new handshake, a resumed TLS session and an open keep-alive connection, with the
revocation stream; each must be at most 1 s (docs/floodlight.md).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from floodlight_trust.fileio import atomic_write
from floodlight_trust.floodlight import bridge
from floodlight_trust.pki.grants import REST_GRANTS_OID, VNF_POLICY_OID, HttpMethod, RestGrant, decode_grants
from tests.support import plugin as ps
from tests.support.floodlight import make_ca
from tests.support.world import enrolled_vnf

TARGET_SECONDS = 1.0


Plugged = ps.Plugged


@pytest.fixture(scope="module")
def plugged(tmp_path_factory: pytest.TempPathFactory, bridge_jar: Path) -> Iterator[Plugged]:
    yield from ps.plugged(tmp_path_factory.mktemp("plugin"))


def client(p: Plugged, vnf: str, tls: ssl.TLSVersion | None = None) -> ps.TlsClient:
    return p.client(vnf, tls)


def test_grants_allow_and_refuse_each_call_and_every_call_is_logged(plugged: Plugged) -> None:
    monitor = client(plugged, "vnf-mon-grants")
    pusher = client(plugged, "vnf-flow-grants")
    assert monitor.request("GET", "/wm/core/health/json") == 200
    assert monitor.request("GET", "/wm/device/") == 200
    assert monitor.request("POST", "/wm/staticflowpusher/json", body=b"{}") == 403
    assert monitor.request("DELETE", "/wm/staticflowpusher/json") == 403
    assert monitor.request("POST", "/wm/firewall/rules/json", body=b"{}") == 403
    assert pusher.request("POST", "/wm/staticflowpusher/json", body=b'{"switch": "1"}') == 200
    assert pusher.request("POST", "/wm/firewall/rules/json", body=b"{}") == 200
    assert pusher.request("GET", "/wm/device/") == 403  # not granted to the flow pusher
    ep = plugged.endpoint
    ps.wait_for_log(ep, 'method=GET path=/wm/device/ status=403 refused="no grant for GET /wm/device/"')
    lines = ep.log_text().splitlines()
    mine = [line for line in lines if "vnf=urn:ftrust:vnf:vnf-mon-grants " in line]
    assert any(
        'method=POST path=/wm/staticflowpusher/json status=403 refused="no grant for POST /wm/staticflowpusher/json"'
        in line
        for line in mine
    )
    assert any('method=GET path=/wm/device/ status=200 allowed="grant GET /wm/device/"' in line for line in mine)
    pushes = [line for line in lines if "vnf=urn:ftrust:vnf:vnf-flow-grants " in line]
    assert any("method=POST path=/wm/staticflowpusher/json status=200" in line for line in pushes)


def test_403_carries_a_short_reason(plugged: Plugged) -> None:
    cert, key = enrolled_vnf(plugged.world, plugged.tmp, "vnf-mon-reason")
    conn = ps.TlsClient(plugged.endpoint.url, cert, key, plugged.files.server_pem).keep_alive()
    conn.request("DELETE", "/wm/staticflowpusher/json")
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 403
    assert body == {"code": 403, "description": "ftrust: no grant for DELETE /wm/staticflowpusher/json"}


def test_grant_extension_round_trips_from_policy_to_certificate_to_enforcement(plugged: Plugged) -> None:
    cert_path, _ = enrolled_vnf(plugged.world, plugged.tmp, "vnf-flow-roundtrip")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(REST_GRANTS_OID))
    assert ext.critical is False
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    rule = plugged.world.service.vm.policy.enroll_rule("vnf-flow-roundtrip")
    assert rule is not None
    assert (
        decode_grants(ext.value.value)
        == rule.profile.rest_grants
        == (
            RestGrant(HttpMethod.GET, "/wm/core/**"),
            RestGrant(HttpMethod.POST, "/wm/staticflowpusher/json"),
            RestGrant(HttpMethod.POST, "/wm/firewall/rules/json"),
        )
    )
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [VNF_POLICY_OID]


@pytest.mark.parametrize("tls", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_revocation_via_the_stream_refuses_new_resumed_and_kept_alive_connections_within_1s(
    plugged: Plugged, tls: ssl.TLSVersion
) -> None:
    vnf = f"vnf-mon-revoke-{tls.name[-3:].replace('_', '')}"
    vnf_client = client(plugged, vnf, tls)
    assert vnf_client.request("GET", "/wm/core/health/json") == 200
    assert vnf_client.request("GET", "/wm/core/health/json", resume=True) == 200
    assert vnf_client.reused, "the client could not resume its TLS session before the revocation"
    resumable = vnf_client.session
    fresh = ps.TlsClient(plugged.endpoint.url, *_paths(plugged, vnf), plugged.files.server_pem, tls=tls)
    kept = vnf_client.keep_alive()
    assert ps.keep_alive_status(kept, "GET", "/wm/device/") == 200
    pushed = plugged.world.service.feed.pushed if plugged.world.service.feed else 0

    decided = time.monotonic()
    assert plugged.world.service.vm.revocation.revoke(vnf=vnf, reason="plugin test", actor="test")
    kept_delay = ps.first_refusal(lambda: ps.keep_alive_status(kept, "GET", "/wm/device/"), since=decided, within=5)

    def resumed() -> int:
        vnf_client.session = resumable
        return vnf_client.request("GET", "/wm/core/health/json", resume=True)

    resumed_delay = ps.first_refusal(resumed, since=decided, within=5)
    new_delay = ps.first_refusal(lambda: fresh.request("GET", "/wm/core/health/json"), since=decided, within=5)
    kept.close()
    print(f"{tls.name} stream: new {new_delay}, resumed {resumed_delay}, keep-alive {kept_delay} s")
    assert plugged.world.service.feed is not None and plugged.world.service.feed.pushed > pushed
    for what, delay in (("new handshake", new_delay), ("resumed session", resumed_delay), ("keep-alive", kept_delay)):
        assert delay is not None and delay <= TARGET_SECONDS, f"{what}: refused after {delay} s"
    vnf_client.session = resumable  # the revoked certificate's cached session is gone: no resumption,
    assert vnf_client.request("GET", "/wm/core/health/json", resume=True) == 0  # and the full handshake fails
    assert not vnf_client.reused
    ps.wait_for_log(plugged.endpoint, "(stream): invalidated")
    ps.wait_for_log(plugged.endpoint, f"vnf=urn:ftrust:vnf:{vnf} ")
    assert any(
        f"vnf=urn:ftrust:vnf:{vnf} " in line and 'status=403 refused="revoked (revocation stream)"' in line
        for line in plugged.endpoint.log_text().splitlines()
    )


def _paths(p: Plugged, vnf: str) -> tuple[Path, Path]:
    return p.tmp / f"{vnf}.pem", p.tmp / f"{vnf}.key"


def test_ca_rotation_is_followed_without_a_restart(plugged: Plugged, tmp_path: Path) -> None:
    old_client = client(plugged, "vnf-mon-rotation")
    rotated = make_ca(tmp_path / "rotated", name="CN=rotated VNF CA")
    cert, key = ps.issue_vnf(rotated, tmp_path, "vnf-mon-new-ca", (RestGrant(HttpMethod.GET, "/wm/core/**"),))
    new_client = ps.TlsClient(plugged.endpoint.url, cert, key, plugged.files.server_pem)
    bundle = plugged.files.bundle
    original = bundle.read_bytes()
    pid = plugged.endpoint._proc.pid if plugged.endpoint._proc else None
    try:
        assert new_client.request("GET", "/wm/core/health/json") == 0  # not (yet) trusted
        atomic_write(bundle, original + rotated.certificate_pem)  # the overlap: both CAs
        assert ps.first_refusal(lambda: 0 if new_client.request("GET", "/wm/core/health/json") == 200 else 200,
                                since=time.monotonic(), within=5) is not None  # fmt: skip
        assert old_client.request("GET", "/wm/core/health/json") == 200
        kept = old_client.keep_alive()
        assert ps.keep_alive_status(kept, "GET", "/wm/core/health/json") == 200
        atomic_write(bundle, rotated.certificate_pem)  # the old CA retired
        delay = ps.first_refusal(lambda: ps.keep_alive_status(kept, "GET", "/wm/core/health/json"),
                                 since=time.monotonic(), within=5)  # fmt: skip
        assert delay is not None  # even the open connection of the old CA's VNF
        kept.close()
        assert old_client.request("GET", "/wm/core/health/json") == 0
        assert new_client.request("GET", "/wm/core/health/json") == 200
    finally:
        atomic_write(bundle, original)
    assert plugged.endpoint._proc is not None and plugged.endpoint._proc.pid == pid  # never restarted
    assert "trust bundle changed, reloaded" in plugged.endpoint.log_text()
    assert old_client.request("GET", "/wm/core/health/json") == 200


def test_ocsp_fallback_when_the_stream_is_unavailable(plugged: Plugged, tmp_path: Path) -> None:
    """Stream unreachable from the start: every check goes to the VM's OCSP responder (measured)."""
    config = plugged.files.config(
        f"https://localhost:{bridge._free_port('127.0.0.1')}", plugged.world.service.tls_certificate,
        name="ocsp-fallback.properties", staleness_seconds=0.5,
    )  # fmt: skip
    vnf = "vnf-mon-ocsp"
    cert, key = enrolled_vnf(plugged.world, plugged.tmp, vnf)
    with ps.endpoint(plugged.files, config) as ep:
        c = ps.TlsClient(ep.url, cert, key, plugged.files.server_pem)
        assert c.request("GET", "/wm/core/health/json") == 200
        assert c.request("GET", "/wm/core/health/json", resume=True) == 200 and c.reused
        resumable = c.session
        kept = c.keep_alive()
        assert ps.keep_alive_status(kept, "GET", "/wm/device/") == 200
        answers = plugged.world.service.publisher.ocsp_answers
        decided = time.monotonic()
        assert plugged.world.service.vm.revocation.revoke(vnf=vnf, reason="ocsp test", actor="test")
        kept_delay = ps.first_refusal(lambda: ps.keep_alive_status(kept, "GET", "/wm/device/"), since=decided, within=5)

        def resumed() -> int:
            c.session = resumable
            return c.request("GET", "/wm/core/health/json", resume=True)

        resumed_delay = ps.first_refusal(resumed, since=decided, within=5)
        new_delay = ps.first_refusal(lambda: c.request("GET", "/wm/core/health/json"), since=decided, within=5)
        kept.close()
        ps.wait_for_log(ep, "(OCSP): invalidated")  # the revocation was learnt from the OCSP responder
    print(f"OCSP fallback: new {new_delay}, resumed {resumed_delay}, keep-alive {kept_delay} s")
    assert plugged.world.service.publisher.ocsp_answers > answers
    for what, delay in (("new handshake", new_delay), ("resumed session", resumed_delay), ("keep-alive", kept_delay)):
        assert delay is not None and delay <= TARGET_SECONDS, f"{what}: refused after {delay} s"


def test_vm_unreachable_fails_closed_after_the_staleness_bound(tmp_path: Path, bridge_jar: Path) -> None:
    bound = 1.5
    ca = make_ca(tmp_path)  # its OCSP responder (port 9) is down too: nothing to fall back to
    stream = ps.stream_server(ca, tmp_path)
    files = ps.plugin_files(tmp_path / "plugin", ca)
    config = files.config(stream.url, stream.certificate, staleness_seconds=bound)
    cert, key = ps.issue_vnf(ca, tmp_path, "vnf-mon-stale", (RestGrant(HttpMethod.GET, "/wm/core/**"),))
    try:
        with ps.endpoint(files, config) as ep:
            ps.wait_for_log(ep, ps.SUBSCRIBED)
            c = ps.TlsClient(ep.url, cert, key, files.server_pem)
            kept = c.keep_alive()
            assert ps.keep_alive_status(kept, "GET", "/wm/core/health/json") == 200
            assert c.request("GET", "/wm/core/health/json") == 200
            lost = time.monotonic()
            stream.stop()
            kept_delay = ps.first_refusal(lambda: ps.keep_alive_status(kept, "GET", "/wm/core/health/json"),
                                          since=lost, within=10)  # fmt: skip
            assert c.request("GET", "/wm/core/health/json") == 0  # and every new handshake
            kept.close()
            ps.wait_for_log(ep, f"(bound {bound} s) and the OCSP fallback failed")
            log = ep.log_text()
    finally:
        stream.stop()
    print(f"VM unreachable: refused {kept_delay} s after the stream was lost (bound {bound} s)")
    # Knowledge is as old as the last heartbeat (one per second) when the stream is lost.
    assert kept_delay is not None and bound - 1.1 <= kept_delay <= bound + 1.0
    assert "FAIL CLOSED: revocation knowledge from" in log and f"(bound {bound} s)" in log


def test_floodlight_check_shows_the_grants_and_whether_the_controller_honours_them(
    plugged: Plugged, tmp_path: Path
) -> None:
    from tests.support.cli import ftrust
    from tests.support.floodlight import STORE_PASSWORD

    cert, key = enrolled_vnf(plugged.world, plugged.tmp, "vnf-mon-check")
    cfg = tmp_path / "ftrust.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    common = ("--cert", str(cert), "--key", str(key), "--ca", str(plugged.files.server_pem), "--grants")
    ok = ftrust("floodlight", "check", plugged.endpoint.url, *common, "--json", config=cfg)
    doc = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert doc["grants"] == [{"method": "GET", "path": "/wm/core/**"}, {"method": "GET", "path": "/wm/device/"}]
    assert doc["grants_honoured"]["honoured"] is True and doc["status"] == 200
    refused = ftrust(
        "floodlight", "check", plugged.endpoint.url, *common, "--path", "/wm/staticflowpusher/json", config=cfg
    )
    assert refused.returncode == 0, refused.stdout + refused.stderr
    assert "REST grants in the certificate: GET /wm/core/**, GET /wm/device/" in refused.stdout
    assert "the controller honours them: GET /wm/staticflowpusher/json should be refused, was refused (HTTP 403)" in (
        refused.stdout
    )
    # A controller without the plugin does not: the same call is answered.
    with bridge.FloodlightEndpoint(plugged.files.keystore, STORE_PASSWORD) as plain:
        r = ftrust("floodlight", "check", plain.url, *common, "--path", "/wm/staticflowpusher/json", config=cfg)
    assert r.returncode == 1 and "does NOT honour them" in r.stdout
