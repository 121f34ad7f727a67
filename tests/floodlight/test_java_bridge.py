"""Through the real JDK: Floodlight's way of loading the keystore, and its TLS peer behaviour."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from floodlight_trust.floodlight import bridge, client
from floodlight_trust.pki.crl import crl_der
from tests.support.floodlight import STORE_PASSWORD, issue_client, make_ca, write_keystore


def test_probe_loads_the_managers_keystore_as_floodlight(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path)
    path, _ = write_keystore(tmp_path, ca)
    seen = bridge.keystore_probe(path, STORE_PASSWORD, "JKS")
    assert seen["ok"] is True and seen["type"] == "JKS"
    assert seen["trust_manager_algorithm"] == "SunX509"
    assert {(e["alias"], e["kind"]) for e in seen["entries"]} == {
        ("ftrust-ca", "trustedCertEntry"), ("floodlight", "PrivateKeyEntry")
    }  # fmt: skip
    assert {t["subject"] for t in seen["trusted"]} == {"CN=Test VNF CA", "CN=floodlight"}
    wrong = bridge.keystore_probe(path, type(STORE_PASSWORD)("not-the-password", "env:X"), "JKS")
    assert wrong["ok"] is False and wrong["stage"] == "load"


def test_endpoint_accepts_ca_issued_and_refuses_unknown_ca_and_no_certificate(tmp_path: Path, bridge_jar: Path) -> None:
    ca = make_ca(tmp_path)
    keystore, server_pem = write_keystore(tmp_path, ca)
    cert, key, _ = issue_client(ca, tmp_path, "vnf-a")
    stranger_ca = make_ca(tmp_path / "stranger", name="CN=Stranger CA")
    other_cert, other_key, _ = issue_client(stranger_ca, tmp_path, "vnf-x")
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD) as endpoint:
        assert endpoint.url == f"https://127.0.0.1:{endpoint.port}"
        ok = client.check(endpoint.url, cert, key, server_pem)
        assert ok.accepted and ok.status == 200 and ok.body == {"healthy": True}
        assert ok.client_cert_requested is True and ok.client_cert_sent and ok.server_verified
        assert ok.tls_version in ("TLSv1.2", "TLSv1.3")
        switches = client.check(endpoint.url, cert, key, server_pem, path=client.SWITCHES_PATH)
        assert switches.status == 200 and switches.body[0]["switchDPID"] == "00:00:00:00:00:00:00:01"
        memory = client.check(endpoint.url, cert, key, server_pem, path=client.MEMORY_PATH)
        assert memory.status == 200 and set(memory.body) == {"total", "free"}
        stranger = client.check(endpoint.url, other_cert, other_key, server_pem)
        assert stranger.refused and not stranger.accepted and stranger.status is None
        anonymous = client.check(endpoint.url, None, None, server_pem)
        assert anonymous.refused and anonymous.client_cert_requested is True and not anonymous.client_cert_sent
        assert "client=CN=vnf-a" in endpoint.log_text()
    assert not bridge.tls_port_open("127.0.0.1", endpoint.port)  # the JVM is gone


class _CrlServer:
    """The CA's CRL over plain HTTP on loopback, without Last-Modified (see docs/floodlight.md)."""

    def __init__(self) -> None:
        self.crl = b""
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(outer.crl)))
                self.end_headers()
                self.wfile.write(outer.crl)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crl.der"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def crl_server() -> Iterator[_CrlServer]:
    server = _CrlServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_revoked_certificate_is_refused_after_the_crl_is_republished(
    tmp_path: Path, bridge_jar: Path, crl_server: _CrlServer
) -> None:
    ca = make_ca(tmp_path, crl_url=crl_server.url)
    keystore, server_pem = write_keystore(tmp_path, ca)
    cert, key, serial = issue_client(ca, tmp_path, "vnf-a")

    def publish() -> None:
        crl_server.crl = crl_der(ca.crl(at=datetime.now(UTC), next_update=timedelta(seconds=60)))

    publish()
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD, pkix_revocation=True, crl_timeout_seconds=5) as endpoint:
        assert "-Dcom.sun.security.enableCRLDP=true" in endpoint.jvm_flags
        assert client.check(endpoint.url, cert, key, server_pem).accepted
        assert crl_server.fetches == 1  # the JVM really fetched the CRL from the distribution point
    ca.revoke(serial, "key-compromise", at=datetime.now(UTC))
    publish()
    # The JDK caches a fetched CRL for 30 s per JVM (URICertStore.CHECK_INTERVAL); a restarted
    # controller fetches it at once. The 30 s bound itself is measured in issue 8's test.
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD, pkix_revocation=True) as endpoint:
        refused = client.check(endpoint.url, cert, key, server_pem)
        assert refused.refused and not refused.accepted
        assert crl_server.fetches == 2
    # Without the flags (Floodlight's default SunX509 trust manager) revocation is not checked at all.
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD, pkix_revocation=False) as endpoint:
        assert client.check(endpoint.url, cert, key, server_pem).accepted
        assert crl_server.fetches == 2


def _without_revocation_pointers(cert_path: Path, ca_dir: Path, ca_password: bytes) -> Path:
    """The same certificate (subject, key, validity, other extensions) re-signed by the same CA
    without its CRL distribution point and AIA/OCSP, so it differs only in where revocation is found."""
    issued = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key.pem").read_bytes(), ca_password)
    builder = (
        x509.CertificateBuilder()
        .subject_name(issued.subject)
        .issuer_name(issued.issuer)
        .public_key(issued.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued.not_valid_before_utc)
        .not_valid_after(issued.not_valid_after_utc)
    )
    dropped = (x509.CRLDistributionPoints.oid, x509.AuthorityInformationAccess.oid)
    for ext in issued.extensions:
        if ext.oid not in dropped:
            builder = builder.add_extension(ext.value, ext.critical)
    bare = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    out = cert_path.with_name(cert_path.stem + "-no-crldp.crt")
    out.write_bytes(bare.public_bytes(serialization.Encoding.PEM))
    return out


def test_certificate_without_crl_distribution_point_is_refused_with_revocation_flags(
    tmp_path: Path, bridge_jar: Path, crl_server: _CrlServer
) -> None:
    ca = make_ca(tmp_path, crl_url=crl_server.url)
    keystore, server_pem = write_keystore(tmp_path, ca)
    cert, key, _ = issue_client(ca, tmp_path, "vnf-a")
    bare = _without_revocation_pointers(cert, tmp_path / "ca", b"ca password 1")
    crl_server.crl = crl_der(ca.crl(at=datetime.now(UTC), next_update=timedelta(seconds=60)))
    with bridge.FloodlightEndpoint(keystore, STORE_PASSWORD, pkix_revocation=True) as endpoint:
        assert client.check(endpoint.url, cert, key, server_pem).accepted  # the CA's certificate as issued
        refused = client.check(endpoint.url, bare, key, server_pem)
        assert refused.refused and not refused.accepted and refused.status is None
        assert "client=CN=vnf-a" in endpoint.log_text()  # only the accepted request reached the endpoint
        assert endpoint.log_text().count("client=") == 1
