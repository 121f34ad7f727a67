"""``ControllerClient``: the VNF's mutual-TLS client to Floodlight's REST API, inside the enclave.

VNF code running on the enclave runtime calls the controller with the enclave's own credentials::

    from floodlight_trust.enclave import ControllerClient, RevokedError

    client = ControllerClient(runtime, "https://floodlight:8081")
    switches = client.get("/wm/core/controller/switches/json").body

The private key never leaves the enclave's process: the TLS context is loaded from an encrypted
PEM under a random one-time password in a private temporary directory (a tmpfs inside the enclave
under Gramine) that is deleted at once. Before each call the client looks for renewed credentials
(installed by this process or, through sealed storage, by another process of the same enclave) and
switches to them without a restart. When the controller refuses the TLS session, the client asks
the VM's OCSP responder (the URL in its certificate, the answer checked against the pinned VM CA)
and raises :class:`RevokedError` if the certificate was revoked.
"""

from __future__ import annotations

import json
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import urllib3
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from floodlight_trust import clock
from floodlight_trust.clients import httpclient
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import InputError, ServiceError

OCSP_TIMEOUT_SECONDS = 5.0


class ControllerError(ServiceError):
    """A call to the controller did not get an HTTP answer."""


class NotEnrolledError(ControllerError):
    """The enclave holds no (valid) credentials: enroll it first."""


class ControllerRefused(ControllerError):
    """The controller refused the TLS session, and the VM does not say the certificate is revoked."""


class RevokedError(ControllerError):
    """The VM revoked this enclave's certificate: the VNF is no longer admitted."""

    def __init__(self, vnf: str, serial: int, revoked_at: datetime | None, reason: str | None):
        when = f" at {clock.format_time(revoked_at)}" if revoked_at else ""
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"the certificate of {vnf} (serial {serial:x}) was revoked by the Verification Manager{when}{why}",
            hint="the VNF must be attested and enrolled again",
        )
        self.vnf = vnf
        self.serial = serial
        self.revoked_at = revoked_at
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ControllerResponse:
    status: int
    body: Any  # parsed JSON, or text
    tls_version: str | None
    serial: str  # hex serial of the certificate the call was made with

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "tls_version": self.tls_version, "serial": self.serial}


def _ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP:
            return str(desc.access_location.value)
    return None


def _signed_by(issuer: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    key = issuer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def revocation_status(
    leaf: x509.Certificate, vm_ca: x509.Certificate, *, timeout: float = OCSP_TIMEOUT_SECONDS
) -> tuple[bool, datetime | None, str | None] | None:
    """Ask the VM's OCSP responder about ``leaf``: (revoked, when, reason), or None when no
    trustworthy answer came (no URL, unreachable, not signed by the pinned CA, another serial)."""
    url = _ocsp_url(leaf)
    if url is None or urlsplit(url).scheme not in ("http", "https"):
        return None
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, vm_ca, hashes.SHA256()).build()
    pool = httpclient.new_pool(timeout=timeout, maxsize=1)
    try:
        reply = httpclient.send(
            pool,
            "POST",
            url,
            what="the VM's OCSP responder",
            body=request.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        response = ocsp.load_der_ocsp_response(reply.data[: 64 * 1024])
    except (ServiceError, ValueError):
        return None
    finally:
        pool.clear()
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or not _signed_by(vm_ca, response):
        return None
    if response.serial_number != leaf.serial_number:
        return None
    if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        reason = response.revocation_reason.name if response.revocation_reason is not None else None
        return True, response.revocation_time_utc, reason
    return False, None, None


class ControllerClient:
    """Mutual TLS from this enclave to the controller's REST API (see the module docstring)."""

    def __init__(
        self,
        runtime: EnclaveRuntime,
        url: str,
        *,
        controller_ca: Path | None = None,
        timeout: float = 10.0,
    ):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise InputError(f"not an https URL: {url[:200]!r}", hint="e.g. https://127.0.0.1:8081")
        self.runtime = runtime
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 443
        self.controller_ca = controller_ca
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._pool: urllib3.PoolManager | None = None  # the TLS context of one set of credentials
        self._generation = -1
        self._leaf: x509.Certificate | None = None

    def _current(self) -> tuple[urllib3.PoolManager, x509.Certificate]:
        self.runtime.reload()  # renewed credentials sealed by another process of this enclave
        if self._context is None or self._generation != self.runtime.generation:
            identity = self.runtime.tls_identity()
            if identity is None:
                raise NotEnrolledError(
                    f"the enclave of {self.runtime.vnf} holds no credentials",
                    hint="enroll it: ftrust vm enroll HOST VNF",
                )
            creds, key = identity
            self._context = self._build_context("".join(creds.chain_pem), key)
            if self._pool is not None:
                self._pool.clear()  # renewed: no connection made with the old certificate is reused
            self._pool = httpclient.new_pool(timeout=self.timeout, ssl_context=self._context, maxsize=4)
            self._generation = self.runtime.generation
            self._leaf = creds.leaf
        assert self._leaf is not None and self._pool is not None
        if self._leaf.not_valid_after_utc <= clock.now():
            raise NotEnrolledError(
                f"the certificate of {self.runtime.vnf} expired at {clock.format_time(self._leaf.not_valid_after_utc)}",
                hint="it is renewed while the VM re-attests the VNF; was it stopped?",
            )
        return self._pool, self._leaf

    def _build_context(self, chain_pem: str, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.controller_ca is not None:
            try:
                ctx.load_verify_locations(cafile=str(self.controller_ca))
            except (OSError, ssl.SSLError) as e:
                raise InputError(f"cannot load the controller CA {self.controller_ca}: {e}") from None
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        password = secrets.token_bytes(32).hex().encode()
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        # ssl loads keys from files only: a private directory, an encrypted key, removed at once.
        with tempfile.TemporaryDirectory(prefix="ftrust-tls-") as tmp:
            cert_path, key_path = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            cert_path.write_text(chain_pem)
            key_path.write_bytes(encrypted)
            ctx.load_cert_chain(str(cert_path), str(key_path), password=password)
        return ctx

    def get(self, path: str) -> ControllerResponse:
        """GET ``path``; raises :class:`RevokedError`, :class:`ControllerRefused` or
        :class:`NotEnrolledError` instead of answering."""
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> ControllerResponse:
        if not path.startswith("/"):
            raise InputError(f"a REST path starts with '/': {path[:100]!r}")
        pool, leaf = self._current()
        serial = f"{leaf.serial_number:x}"
        data = json.dumps(body).encode() if body is not None else None
        # A fresh TLS session per call: the controller checks revocation at each handshake (its
        # documented bound, docs/floodlight.md), so a kept-alive session would outlive a revocation.
        headers = {"Accept": "application/json", "Connection": "close"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            reply = pool.request(
                method, self.url + path, body=data, headers=headers, redirect=False, preload_content=False
            )
        except urllib3.exceptions.SSLError as e:
            if isinstance(e.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise ControllerError(f"the controller's certificate does not verify: {e}") from None
            self._refused(leaf, e)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError) as e:
            if isinstance(e, urllib3.exceptions.NewConnectionError):
                raise ControllerError(f"cannot connect to the controller {self.host}:{self.port}") from None
            # TLS 1.3: a refused client certificate arrives as an alert on the first read.
            self._refused(leaf, e)
        except urllib3.exceptions.HTTPError as e:
            raise ControllerError(f"the controller at {self.url} did not answer: {type(e).__name__}") from None
        try:
            sock = getattr(reply.connection, "sock", None)
            version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
            raw_body = reply.read()
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as e:
            self._refused(leaf, e)
        finally:
            reply.release_conn()
        try:
            parsed: Any = json.loads(raw_body)
        except ValueError:
            parsed = raw_body.decode("utf-8", "replace")
        return ControllerResponse(reply.status, parsed, version, serial)

    def _refused(self, leaf: x509.Certificate, error: BaseException) -> NoReturn:
        cause = error.__context__ if isinstance(error.__context__, ssl.SSLError) else error
        why = cause.reason if isinstance(cause, ssl.SSLError) and cause.reason else type(error).__name__
        vm_ca = self.runtime.vm_ca
        status = revocation_status(leaf, vm_ca) if vm_ca is not None else None
        if status is not None and status[0]:
            raise RevokedError(self.runtime.vnf, leaf.serial_number, status[1], status[2]) from None
        known = "the VM says the certificate is good" if status is not None else "the VM's OCSP gave no answer"
        raise ControllerRefused(f"the controller refused the TLS session ({why}); {known}") from None
