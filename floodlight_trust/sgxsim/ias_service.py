"""A local IAS-compatible service with its own report signing CA, for tests and demos.

Speaks IAS API v4/v5 (``POST /sgx/attestation/v{4,5}/report``) over plain HTTP on loopback, checks
the subscription key, and answers with a report signed exactly as IAS does (RSA PKCS#1 v1.5 SHA-256
over the body, URL-encoded PEM chain in X-IASReport-Signing-Certificate). Its CA is NOT Intel's:
reports it signs verify only when a test pins :attr:`SimulatedIas.ca_der`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import urllib.parse
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from floodlight_trust import clock
from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.sgx_quote import SIGNED_SIZE, EpidQuote, parse_quote
from floodlight_trust.http.server import HttpServer, JsonApp, RawResponse, Request


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "floodlight-trust SIMULATED IAS"),
        ]
    )


class SimulatedIas:
    """An IAS look-alike. ``status`` / ``advisories`` set what it says about every quote.

    Once EPID groups are registered (:meth:`register_group`, from simulated platforms), it checks
    each quote's simulated EPID signature against its group's key and answers SIGNATURE_INVALID
    for an unknown group or a bad signature, as IAS does; ``group_status`` overrides ``status``
    per group (e.g. GROUP_OUT_OF_DATE). ``nonce_override`` makes it echo another nonce than the
    one sent (to test that verifiers refuse such a report).
    """

    def __init__(self, subscription_key: str, *, status: str = "OK", advisories: Iterable[str] = ()) -> None:
        self.subscription_key = subscription_key
        self.status = status
        self.advisories = list(advisories)
        self.groups: dict[bytes, ec.EllipticCurvePublicKey] = {}
        self.group_status: dict[bytes, str] = {}
        self.nonce_override: str | None = None
        self.requests = 0
        now = clock.now()
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        def cert(subject: str, key: rsa.RSAPrivateKey, ca: bool) -> x509.Certificate:
            return (
                x509.CertificateBuilder()
                .subject_name(_name(subject))
                .issuer_name(_name("SIMULATED Attestation Report Signing CA"))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256())
            )

        self.ca = cert("SIMULATED Attestation Report Signing CA", ca_key, True)
        self.signer = cert("SIMULATED Attestation Report Signing", self._key, False)
        self.ca_der = self.ca.public_bytes(serialization.Encoding.DER)
        self._server: HttpServer | None = None

    def register_group(self, platform: Any, *, status: str | None = None) -> None:
        """Know ``platform``'s simulated EPID group (a :class:`SimulatedPlatform`); optionally its status."""
        self.groups[platform.epid_group_id] = platform.epid_group_key.public_key()
        if status is not None:
            self.group_status[platform.epid_group_id] = status

    def _status(self, quote: EpidQuote) -> str:
        if not self.groups:
            return self.status
        from floodlight_trust.sgxsim import verify_simulated_epid_signature

        key = self.groups.get(quote.epid_group_id)
        if key is None or not verify_simulated_epid_signature(quote, key):
            return "SIGNATURE_INVALID"
        return self.group_status.get(quote.epid_group_id, self.status)

    # -- HTTP ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> RawResponse:
        """One IAS request (any path: unknown ones are 404 as IAS answers them)."""
        self.requests += 1
        version = next((v for v in (4, 5) if request.path == f"/sgx/attestation/v{v}/report"), None)
        if request.method != "POST" or version is None:
            return self._plain(404)
        given = request.headers.get("ocp-apim-subscription-key", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, self.subscription_key.encode("utf-8")):
            return self._plain(401)
        try:
            payload = json.loads(request.body)
            quote = parse_quote(base64.b64decode(payload["isvEnclaveQuote"], validate=True))
            nonce = payload.get("nonce")
        except (ValueError, KeyError, TypeError, binascii.Error, ParseError, RecursionError):
            return self._plain(400)
        if not isinstance(quote, EpidQuote) or quote.signature is None:
            return self._plain(400)
        report: dict[str, Any] = {
            "id": str(secrets.randbits(120)),
            "timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "version": version,
            "isvEnclaveQuoteStatus": self._status(quote),
            "isvEnclaveQuoteBody": base64.b64encode(quote.raw[:SIGNED_SIZE]).decode(),
        }
        if self.advisories:
            report["advisoryURL"] = "https://security-center.intel.com"
            report["advisoryIDs"] = self.advisories
        if quote.sign_type == 1:
            report["epidPseudonym"] = base64.b64encode(quote.raw[SIGNED_SIZE + 4 : SIGNED_SIZE + 132]).decode()
        if self.nonce_override is not None:
            report["nonce"] = self.nonce_override
        elif nonce is not None:
            report["nonce"] = nonce
        body = json.dumps(report, separators=(",", ":")).encode()
        signature = base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256()))
        chain = (
            self.signer.public_bytes(serialization.Encoding.PEM) + self.ca.public_bytes(serialization.Encoding.PEM)
        ).decode()
        return RawResponse(
            200,
            "application/json",
            body,
            (
                ("Request-ID", secrets.token_hex(16)),
                ("X-IASReport-Signature", signature.decode()),
                ("X-IASReport-Signing-Certificate", urllib.parse.quote(chain)),
            ),
        )

    @staticmethod
    def _plain(status: int) -> RawResponse:
        return RawResponse(status, "text/plain", b"", (("Request-ID", secrets.token_hex(16)),))

    # -- serving ---------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = a free port) in a thread; return the base URL for IasClient."""
        app = JsonApp(name="simulated-ias")
        for version in (4, 5):
            app.route("POST", f"/sgx/attestation/v{version}/report")(lambda request: self.handle(request))
        server = HttpServer(app, host=host, port=port, threads=2, name="simulated-ias", access_log=False).start()
        self._server = server
        return f"http://{host}:{server.port}/sgx/attestation"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None
