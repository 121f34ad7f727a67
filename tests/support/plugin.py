"""Test support for the controller-side plugin: a deployment whose policy grants REST calls, the
trust provider's files, and a TLS client that can keep a connection alive or resume a session."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock
from floodlight_trust.floodlight import bridge
from floodlight_trust.floodlight.plugin import RevocationMode, TrustProviderConfig
from floodlight_trust.http.server import HttpServer
from floodlight_trust.manager.revocation_feed import RevocationFeed, issue_controller_credential
from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
from floodlight_trust.pki.grants import RestGrant
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.secrets import Secret
from tests.support.floodlight import STORE_PASSWORD, write_keystore
from tests.support.world import World, enrolled_vnf

CONTROLLER_PASSWORD = Secret("controller p12 password", "test")

GRANTS_POLICY = """
enroll monitor for "vnf-mon-*" {
    host = test_host
    enclave = firewall
    grant GET "/wm/core/**"
    grant GET "/wm/device/"
    certificate {
        san_uri = ["urn:ftrust:vnf:{vnf}"]
        validity = 1h
    }
}

enroll flowpusher for "vnf-flow-*" {
    host = test_host
    enclave = firewall
    grant GET "/wm/core/**"
    grant POST "/wm/staticflowpusher/json"
    grant POST "/wm/firewall/rules/json"
}
"""


@dataclass
class PluginFiles:
    """What `ftrust floodlight provision` writes for the trust provider, in a test directory."""

    directory: Path
    keystore: Path
    server_pem: Path
    bundle: Path
    controller_p12: Path
    controller_password: Path

    def config(
        self,
        vm_url: str,
        vm_certificate: Path,
        *,
        name: str = "ftrust-trust.properties",
        staleness_seconds: float = 5.0,
        mode: RevocationMode = RevocationMode.STREAM,
    ) -> Path:
        path = self.directory / name
        cfg = TrustProviderConfig(
            trust_bundle=self.bundle,
            mode=mode,
            vm_url=vm_url,
            vm_certificate=vm_certificate,
            controller_keystore=self.controller_p12,
            controller_password_file=self.controller_password,
            staleness_seconds=staleness_seconds,
        )
        path.write_text(cfg.render())
        return path


def plugin_files(directory: Path, ca: object, controller_ca: object | None = None) -> PluginFiles:
    """Floodlight's keystore, the trust bundle (``ca``'s certificate) and the controller's stream
    credential (issued by ``controller_ca``, default ``ca``)."""
    directory.mkdir(parents=True, exist_ok=True)
    keystore, server_pem = write_keystore(directory, ca)  # type: ignore[arg-type]
    bundle = directory / "vnf-ca-bundle.pem"
    bundle.write_bytes(ca.certificate_pem)  # type: ignore[attr-defined]
    p12, _ = issue_controller_credential(
        controller_ca or ca, "floodlight", directory / "controller", at=clock.now(), password=CONTROLLER_PASSWORD
    )
    password = directory / "controller" / "floodlight.pass"
    password.write_text(CONTROLLER_PASSWORD.reveal() + "\n")
    password.chmod(0o600)
    return PluginFiles(directory, keystore, server_pem, bundle, p12, password)


def endpoint(files: PluginFiles, config: Path) -> bridge.FloodlightEndpoint:
    return bridge.FloodlightEndpoint(files.keystore, STORE_PASSWORD, trust_config=config)


@dataclass
class Plugged:
    """A deployment (VM, CA, sim hosts) and a running JDK endpoint with the plugin following it."""

    world: World
    files: PluginFiles
    endpoint: bridge.FloodlightEndpoint
    tmp: Path

    def client(self, vnf: str, tls: ssl.TLSVersion | None = None) -> TlsClient:
        """A freshly enrolled VNF's client."""
        cert, key = enrolled_vnf(self.world, self.tmp, vnf)
        return TlsClient(self.endpoint.url, cert, key, self.files.server_pem, tls=tls)


def plugged(tmp: Path) -> Iterator[Plugged]:
    from tests.support.world import make_world

    for world in make_world(tmp, crl_port=bridge._free_port("127.0.0.1"), extra_policy=GRANTS_POLICY):
        files = plugin_files(tmp / "plugin", world.ca)
        config = files.config(world.service.api_url, world.service.tls_certificate)
        with endpoint(files, config) as ep:
            wait_for_log(ep, SUBSCRIBED)
            yield Plugged(world, files, ep, tmp)


class TlsClient:
    """A VNF's HTTPS client with its certificate: one request per connection, a kept-alive
    connection, or a resumed TLS session (the session of its previous connection)."""

    def __init__(
        self,
        url: str,
        cert: Path,
        key: Path,
        server_pem: Path,
        *,
        tls: ssl.TLSVersion | None = None,
        key_password: Secret | None = None,
    ):
        host_port = url.removeprefix("https://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=str(server_pem))
        self.ctx.load_cert_chain(str(cert), str(key), password=key_password.reveal() if key_password else None)
        if tls is not None:
            self.ctx.minimum_version = tls
            self.ctx.maximum_version = tls
        self.session: ssl.SSLSession | None = None
        self.reused = False

    def request(self, method: str, path: str, *, resume: bool = False, body: bytes | None = None) -> int:
        """One request on a fresh connection (resuming the last session if ``resume``); the HTTP
        status, or 0 when the TLS handshake (or the connection) was refused."""
        self.reused = False
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as raw:
                with self.ctx.wrap_socket(
                    raw, server_hostname=self.host, session=self.session if resume else None
                ) as tls:
                    self.reused = tls.session_reused
                    status = _exchange(tls, self.host, method, path, body)
                    self.session = tls.session
                    return status
        except (ssl.SSLError, ConnectionError, OSError):
            return 0

    def keep_alive(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)


def _exchange(tls: ssl.SSLSocket, host: str, method: str, path: str, body: bytes | None) -> int:
    payload = body or b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    tls.sendall(head.encode() + b"\r\n" + payload)
    response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
    response.begin()
    response.read()
    return response.status


def keep_alive_status(conn: http.client.HTTPSConnection, method: str, path: str, body: bytes | None = None) -> int:
    """One request on an open connection, which must stay the same connection (no reconnect)."""
    sock = conn.sock
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    assert sock is None or conn.sock is sock, "the connection was re-opened"
    return response.status


def first_refusal(probe: Callable[[], int], *, since: float, within: float, every: float = 0.02) -> float | None:
    """Seconds from ``since`` (a monotonic time) until ``probe`` returns anything but 200 (None if
    still 200 after ``within`` s)."""
    start = since
    while time.monotonic() - start < within:
        status = probe()
        if status != 200:
            return time.monotonic() - start
        time.sleep(every)
    return None


def wait_for_log(ep: bridge.FloodlightEndpoint, text: str, *, timeout: float = 30.0) -> None:
    """Wait until the endpoint's log has ``text`` (e.g. the stream's "subscribed" line)."""
    deadline = time.monotonic() + timeout
    while text not in ep.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in the endpoint's log:\n{ep.log_text()[-3000:]}"
        time.sleep(0.05)


SUBSCRIBED = "subscribed to the revocation stream"


@dataclass
class StreamServer:
    """The VM's revocation stream alone (its real route and feed) over HTTPS, for a CA of the test's."""

    server: HttpServer
    feed: RevocationFeed
    certificate: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server.port}"

    def stop(self) -> None:
        self.feed.close()
        self.server.stop()


def stream_server(ca: CertificateAuthority, directory: Path) -> StreamServer:
    from floodlight_trust.http.server import HttpError, JsonApp
    from floodlight_trust.manager.revocation_feed import add_stream_route, subscriber_identity
    from floodlight_trust.manager.tls import ensure_server_certificate, server_context

    def no_admins(request: object) -> str:
        raise HttpError(403, "no admin role here", kind="Forbidden")

    password = Secret("stream server key", "test")
    cert, key = ensure_server_certificate(directory / "vm-tls", ["localhost"], at=clock.now(), password=password)
    feed = RevocationFeed.for_ca(ca)
    app = JsonApp(name="stream")
    add_stream_route(app, feed, lambda request: subscriber_identity(request, no_admins, ca))
    server = HttpServer(
        app, host="127.0.0.1", port=0, ssl_context=server_context(cert, key, ca.certificate_pem, password), threads=4
    ).start()
    return StreamServer(server, feed, cert)


def issue_vnf(ca: CertificateAuthority, directory: Path, vnf: str, grants: tuple[RestGrant, ...]) -> tuple[Path, Path]:
    """A VNF certificate (VNF policy, ``grants``) issued directly by ``ca``, and its key, as PEM files."""
    key = generate_private_key("ec-p256")
    profile = CertificateProfile(subject=f"CN={vnf}", rest_grants=grants).render(vnf=vnf, host="h")
    issued = ca.issue(key.public_key(), profile, at=clock.now())
    cert_path, key_path = directory / f"{vnf}.pem", directory / f"{vnf}.key"
    cert_path.write_bytes(issued.pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def write_pem(directory: Path, name: str, cert: x509.Certificate, key: object) -> tuple[Path, Path]:
    """A certificate and its (unencrypted) key as PEM files."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
