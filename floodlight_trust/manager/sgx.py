"""Where the VM gets what a quote alone does not carry: IAS reports for EPID quotes, PCS collateral
for DCAP quotes sent without it. Thin shell around :mod:`floodlight_trust.clients.ias` and
:mod:`floodlight_trust.clients.pcs`; the verification itself stays in the pure core.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

from floodlight_trust.claims import EnclaveClaims
from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, Location
from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.secrets import Secret

log = logging.getLogger("floodlight_trust.manager.sgx")

UNSAFE_IAS_WARNING = (
    "UNSAFE IAS TRUST: reports are verified against {path}, not Intel's Attestation Report Signing CA "
    "(ias.unsafe_report_signing_ca); NEVER use this in production"
)


class IasVerifier:
    """Submit an EPID quote to IAS with a fresh nonce and verify the signed report.

    The report must be signed under the pinned report signing CA (Intel's, unless the config names
    an unsafe one), carry the nonce sent, echo the exact quote body and be younger than
    ``max_age``. The subscription key is read from env/file on first use and never logged.
    """

    def __init__(
        self,
        *,
        url: str,
        api_version: int,
        anchor_der: bytes,
        max_age: timedelta,
        key_loader: Any,
        timeout: float = 20.0,
        unsafe_anchor: str | None = None,
    ):
        self.url = url
        self.api_version = api_version
        self.anchor_der = anchor_der
        self.max_age = max_age
        self.timeout = timeout
        self.unsafe_anchor = unsafe_anchor
        self._key_loader = key_loader
        self._client: Any = None
        self._lock = threading.Lock()
        if unsafe_anchor:
            log.warning(UNSAFE_IAS_WARNING.format(path=unsafe_anchor))

    @classmethod
    def from_config(cls, config: Config) -> IasVerifier:
        from floodlight_trust.evidence.ias import report_signing_ca
        from floodlight_trust.fileio import read_bytes

        ias = config.values["ias"]
        path = config.path("ias", "unsafe_report_signing_ca")
        if path is None:
            anchor = report_signing_ca()
        else:
            anchor = read_bytes(path, what="unsafe IAS report signing CA")
            if b"-----BEGIN CERTIFICATE-----" not in anchor and not anchor.startswith(b"0"):
                raise ConfigError("not a PEM or DER certificate", location=Location(str(path)))
        if ias["api_version"] not in (4, 5):
            raise ConfigError("ias.api_version must be 4 or 5", location=Location(config.source))

        def key() -> Secret:
            return config.secret(
                "ias", env_key="subscription_key_env", file_key="subscription_key_file", what="IAS subscription key"
            )

        return cls(
            url=ias["url"],
            api_version=ias["api_version"],
            anchor_der=anchor,
            max_age=timedelta(seconds=ias["max_report_age_seconds"]),
            key_loader=key,
            timeout=float(ias["timeout_seconds"]),
            unsafe_anchor=str(path) if path else None,
        )

    @property
    def simulated(self) -> bool:
        return self.unsafe_anchor is not None

    def _ias(self) -> Any:
        from floodlight_trust.clients.ias import IasClient

        with self._lock:
            if self._client is None:
                self._client = IasClient(
                    self._key_loader(), url=self.url, api_version=self.api_version, timeout=self.timeout
                )
            return self._client

    def verify(self, quote: bytes, *, at: datetime) -> EnclaveClaims:
        """EnclaveClaims (EvidenceType.IAS) of ``quote``; typed errors name what failed.

        SecretError when no subscription key is configured, ServiceError when IAS cannot be
        reached or refuses, VerificationError (IasError) when the report does not verify.
        """
        from floodlight_trust.evidence.ias import verify_report

        nonce = secrets.token_hex(16)  # 32 characters, IAS's maximum: binds the report to this request
        response = self._ias().report(quote, nonce)
        result = verify_report(
            response.body,
            response.signature_b64,
            response.signing_cert_pem,
            self.anchor_der,
            at=at,
            nonce=nonce,
            quote=quote,
            max_age=self.max_age,
        )
        claims = result.claims
        if self.simulated:
            claims = dataclasses.replace(claims, simulated=True)
        return claims


class CollateralFetcher:
    """DCAP collateral from PCS or a PCCS (``[pcs]``) for quotes that arrive without it, cached on
    disk under ``state.dir`` until each document's nextUpdate (``PcsClient``)."""

    def __init__(self, client: Any):
        self.client = client

    @classmethod
    def from_config(cls, config: Config) -> CollateralFetcher:
        from floodlight_trust.clients.pcs import PcsClient

        client = PcsClient(
            config.get("pcs", "url"),
            cache_dir=config.state_path("pcs", "cache_dir"),
            timeout=float(config.get("pcs", "timeout_seconds")),
        )
        return cls(client)

    def collateral_for_quote(self, quote: bytes) -> Collateral:
        result: Collateral = self.client.collateral_for_quote(quote)
        return result


__all__ = ["CollateralFetcher", "IasVerifier"]
