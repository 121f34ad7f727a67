"""The ways an attacker's effect is measured in tests/security: HTTP status and reason, rows in the
VM's database, CRL and OCSP answers, refusal metrics; and an attacker's idle or slow connections."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from floodlight_trust.sgxsim import SimulatedPlatform
from tests.support.world import World


def count(world: World, sql: str, *params: Any) -> int:
    """``SELECT COUNT(*) ...`` on the VM's own database (what an attack left behind)."""
    return int(world.service.vm.storage.query(sql, params)[0][0])


def table_sizes(world: World) -> dict[str, int]:
    """Rows per table of the VM's state store (an unauthenticated attacker must not change them)."""
    tables = [r[0] for r in world.service.vm.storage.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: count(world, f"SELECT COUNT(*) FROM {t}") for t in tables if t != "sqlite_sequence"}


def post(world: World, path: str, body: Any) -> requests.Response:
    """An unauthenticated POST to the VM's API over real HTTPS (what any network peer can send)."""
    return requests.post(world.service.api_url + path, json=body, verify=str(world.service.tls_certificate), timeout=30)


def unauthenticated_rejects(endpoint: str, reason: str) -> float:
    """The metric counting refusals that recorded nothing, for one endpoint and reason code."""
    from floodlight_trust import metrics

    direct = getattr(metrics, "unauthenticated_rejects", None)
    if direct is not None:
        return float(direct(endpoint, reason))
    text = metrics.render()[0].decode()  # the Prometheus registry
    want = f'ftrust_unauthenticated_rejects_total{{endpoint="{endpoint}",reason="{reason}"}}'
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ocsp_status(world: World, certificate_pem: str) -> ocsp.OCSPCertStatus:
    """What the VM's OCSP responder (at the URL in the certificate) says about a certificate now."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    issuer = world.ca.certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    url = world.service.publish.url + "/ocsp"
    r = requests.post(
        url,
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    answer = ocsp.load_der_ocsp_response(r.content)
    return answer.certificate_status


def crl_serials(world: World) -> set[int]:
    """The serials on the CRL the VM publishes now."""
    crl = x509.load_der_x509_crl(requests.get(world.service.publish.url + "/crl.der", timeout=10).content)
    return {r.serial_number for r in crl}


def insecure_client_context() -> ssl.SSLContext:
    """An attacker's TLS client: completes handshakes with anything (it only wants to hold a slot)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class SlowClients:
    """Connections an unauthenticated attacker holds open on one port: ``idle`` ones that never send
    a byte (not even a TLS ClientHello) and ``slow`` ones that finished the handshake (TLS ports)
    and then trickle a request's headers one byte at a time, never ending them."""

    port: int
    tls: bool
    idle: list[socket.socket] = field(default_factory=list)
    slow: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    bytes_sent: int = 0

    def open(self, idle: int, slow: int) -> SlowClients:
        for _ in range(idle):
            self.idle.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        ctx = insecure_client_context()
        for _ in range(slow):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if self.tls:
                sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            sock.sendall(b"POST /v1/attest/host HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.slow.append(sock)
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        deadline = time.monotonic() + 120  # bounded, whatever happens to the test
        while not self._stop.wait(0.25) and time.monotonic() < deadline:
            for sock in list(self.slow):
                try:
                    sock.send(b"a")
                    self.bytes_sent += 1
                except OSError:  # the server closed it (header timeout)
                    self.slow.remove(sock)
            # An idle connection the server dropped at its handshake timeout is opened again, as an
            # attacker keeping the pressure on does.
            for i, sock in enumerate(list(self.idle)):
                if not _is_open(sock):
                    sock.close()
                    try:
                        self.idle[i] = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    except OSError:
                        pass

    def still_open(self) -> int:
        """How many of the attacker's connections the server has not closed yet."""
        return sum(_is_open(sock) for sock in self.idle + self.slow)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in self.idle + self.slow:
            try:
                sock.close()
            except OSError:
                pass


def _is_open(sock: socket.socket) -> bool:
    """The peer has not closed ``sock`` (nothing to read yet, or data waiting)."""
    try:
        sock.setblocking(False)
        data = sock.recv(1, socket.MSG_PEEK) if not isinstance(sock, ssl.SSLSocket) else sock.recv(1)
        return data != b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False
    finally:
        try:
            sock.setblocking(True)
            sock.settimeout(5)
        except OSError:
            pass


@dataclass(frozen=True, eq=False)
class BorrowedQeReport(SimulatedPlatform):
    """A machine that shows another machine's PCK chain (``self``'s certificates: the platform
    identity it claims) with the certified attestation key of ``donor``: the donor's QE report and
    its signature by the donor's PCK key, the very bytes the VM checked in the donor's quotes, and
    quotes signed by the donor's attestation key. Only the QE report check can tell."""

    donor: SimulatedPlatform | None = None

    @property
    def _qe_certification(self) -> tuple[bytes, bytes, bytes, bytes]:
        assert self.donor is not None
        return self.donor._qe_certification

    @classmethod
    def of(cls, machine: SimulatedPlatform, donor: SimulatedPlatform) -> BorrowedQeReport:
        fields = {f.name: getattr(machine, f.name) for f in dataclasses.fields(machine)}
        return cls(**{**fields, "attestation_key": donor.attestation_key}, donor=donor)
