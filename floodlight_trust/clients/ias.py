"""The Intel Attestation Service API v4/v5 client (EPID quotes): ``POST {url}/v{N}/report``.

Nothing here verifies anything: hand the :class:`IasResponse` to
:func:`floodlight_trust.evidence.ias.verify_report` (the pure core), as ``manager/quote_verification.py`` does.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import urllib3

from floodlight_trust.clients import httpclient
from floodlight_trust.errors import ServiceError
from floodlight_trust.secrets import Secret

DEFAULT_URL = "https://api.trustedservices.intel.com/sgx/attestation"


@dataclass(frozen=True, slots=True)
class IasResponse:
    body: bytes
    signature_b64: bytes
    signing_cert_pem: bytes
    request_id: str | None


class IasClient:
    """IAS API v4/v5: ``POST {url}/v{N}/report`` with the quote and a nonce."""

    def __init__(
        self,
        subscription_key: Secret,
        *,
        url: str = DEFAULT_URL,
        api_version: int = 5,
        timeout: float = 20.0,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        if api_version not in (4, 5):
            raise ValueError("IAS API version must be 4 or 5")
        self._key = subscription_key
        self.url = url.rstrip("/")
        self.api_version = api_version
        self.timeout = timeout
        self.pool = pool if pool is not None else httpclient.new_pool(timeout=timeout)

    def report(self, quote: bytes, nonce: str | None = None) -> IasResponse:
        """Submit a quote; return the report with its signature headers (verify with :func:`verify_report`)."""
        payload: dict[str, Any] = {"isvEnclaveQuote": base64.b64encode(quote).decode()}
        if nonce is not None:
            if len(nonce) > 32:
                raise ValueError("an IAS nonce has at most 32 characters")
            payload["nonce"] = nonce
        endpoint = f"{self.url}/v{self.api_version}/report"
        r = httpclient.send(
            self.pool,
            "POST",
            endpoint,
            what="IAS",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": self._key.reveal()},
        )
        rid = r.headers.get("Request-ID")
        if r.status != 200:
            reason = {400: "the quote is invalid", 401: "the subscription key was refused"}.get(r.status, r.reason)
            raise ServiceError(f"IAS answered HTTP {r.status} ({reason}), request id {rid}")
        sig = r.headers.get("X-IASReport-Signature")
        cert = r.headers.get("X-IASReport-Signing-Certificate")
        if not sig or not cert:
            raise ServiceError("IAS response lacks the X-IASReport-Signature / -Signing-Certificate headers")
        return IasResponse(r.data, sig.encode(), urllib.parse.unquote(cert).encode(), rid)
