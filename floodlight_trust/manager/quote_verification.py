"""Quote verification, the VM's step 2 and 3 for SGX: a quote by its evidence type, DCAP against the
trust anchors (with the collateral sent, or fetched from PCS / a PCCS), EPID through IAS (a fresh
nonce, the signed report verified). The verification itself is the pure core's
(``evidence/verify.py`` over ``evidence/dcap.py``, ``evidence/ias.py``); the services are reached
through ``floodlight_trust.clients``. The same code judges real and simulated roots; a simulated
root is named in every result.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from floodlight_trust.claims import EnclaveClaims, EvidenceType
from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, FtrustError, Location
from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.protocol.evidence import Unparsed
from floodlight_trust.reasons import Reason
from floodlight_trust.secrets import Secret

if TYPE_CHECKING:
    from floodlight_trust.evidence.collateral import Collateral
    from floodlight_trust.evidence.dcap import TrustAnchor

log = logging.getLogger("floodlight_trust.manager.quote_verification")

SIMULATED_WARNING = "SIMULATED SGX: verified against the simulated root CA, not real hardware"


class QuoteVerifier:
    """Verify a quote by evidence type: DCAP against the trust anchors (its collateral sent with it,
    or fetched from PCS), EPID through IAS. The outcome is the claims or the ``sgx.*`` reason it
    failed with, for the judges (``judges.protocol.check_quote``); this is the one step of judging
    that may need the network, so the shell runs it."""

    def __init__(
        self,
        anchors: Sequence[TrustAnchor],
        ias: IasVerifier | None = None,
        collateral: CollateralFetcher | None = None,
    ):
        self.anchors = list(anchors)
        self.ias = ias  # EPID quotes are verified through IAS
        self.collateral = collateral  # DCAP collateral when none is sent

    @property
    def simulated(self) -> bool:
        """True when a simulated root (or a simulated IAS) can make a quote verify."""
        return any(a.simulated for a in self.anchors) or bool(self.ias is not None and self.ias.simulated)

    def verify(
        self, evidence_type: EvidenceType, quote: bytes, collateral: Collateral | Unparsed | None, at: datetime
    ) -> EnclaveClaims | Reason:
        if evidence_type is EvidenceType.IAS:
            return self._verify_epid(quote, at)
        from floodlight_trust.evidence.verify import verify_dcap

        if isinstance(collateral, Unparsed):
            return Reason.from_error("sgx.collateral", collateral.error)
        if collateral is None:
            if self.collateral is None:
                return Reason("sgx.collateral", "no DCAP collateral was sent with the quote and no PCS is configured")
            try:  # fetched from PCS / PCCS, cached until nextUpdate
                collateral = self.collateral.collateral_for_quote(quote)
            except FtrustError as e:
                return Reason.from_error("sgx.collateral", e)
        try:  # the one path from a quote to claims, shared with `ftrust policy eval` and policy tests
            return verify_dcap(quote, collateral, self.anchors, at=at).claims
        except FtrustError as e:
            return Reason.from_error("sgx.quote", e)

    def _verify_epid(self, quote: bytes, at: datetime) -> EnclaveClaims | Reason:
        """An EPID quote, judged by IAS: the signed report gives the same claims DCAP gives."""
        if self.ias is None:
            return Reason("sgx.ias", "EPID evidence needs IAS, which is not configured on this VM")
        try:
            return self.ias.verify(quote, at=at)
        except FtrustError as e:
            return Reason.from_error("sgx.ias", e)


# -- what a quote alone does not carry: IAS reports for EPID quotes, PCS collateral for DCAP ------------


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
