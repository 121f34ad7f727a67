"""Quote verification for the workflow: DCAP quotes against the trust anchors, EPID quotes via IAS.

The same code judges real and simulated roots; a simulated root is named in every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from floodlight_trust.claims import EnclaveClaims
from floodlight_trust.errors import FtrustError
from floodlight_trust.manager.verdicts import Denied, Reason, error_reason

SIMULATED_WARNING = "SIMULATED SGX: verified against the simulated root CA, not real hardware"


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    claims: EnclaveClaims


class QuoteVerifier:
    """Dispatch a quote by evidence type; every failure is :class:`Denied` with an ``sgx.*`` reason."""

    def __init__(self, anchors: Sequence[Any], ias: Any = None, collateral: Any = None):
        self.anchors = list(anchors)
        self.ias = ias  # manager.sgx.IasVerifier: EPID quotes are verified through IAS
        self.collateral = collateral  # manager.sgx.CollateralFetcher: DCAP collateral when none is sent

    @property
    def simulated(self) -> bool:
        """True when a simulated root (or a simulated IAS) can make a quote verify."""
        return any(getattr(a, "simulated", False) for a in self.anchors) or bool(
            self.ias is not None and self.ias.simulated
        )

    def verify(self, evidence_type: str, quote: bytes, collateral_doc: Any, at: datetime) -> VerifiedQuote:
        if evidence_type == "IAS":
            return self._verify_epid(quote, at)
        if evidence_type != "DCAP":
            raise Denied(Reason("sgx.evidence_type", f"unknown evidence type {evidence_type!r} (DCAP or IAS)"))
        from floodlight_trust.evidence.collateral import collateral_from_json
        from floodlight_trust.evidence.verify import verify_dcap

        try:
            if collateral_doc is not None:
                collateral = collateral_from_json(collateral_doc)
            elif self.collateral is not None:  # fetched from PCS / PCCS, cached until nextUpdate
                collateral = self.collateral.collateral_for_quote(quote)
            else:
                raise Denied(
                    Reason("sgx.collateral", "no DCAP collateral was sent with the quote and no PCS is configured")
                )
        except FtrustError as e:
            raise Denied(error_reason("sgx.collateral", e)) from None
        try:  # the one path from a quote to claims, shared with `ftrust policy eval` and policy tests
            result = verify_dcap(quote, collateral, self.anchors, at=at)
        except FtrustError as e:
            raise Denied(error_reason("sgx.quote", e)) from None
        return VerifiedQuote(result.claims)

    def _verify_epid(self, quote: bytes, at: datetime) -> VerifiedQuote:
        """An EPID quote, judged by IAS: the signed report gives the same claims DCAP gives."""
        if self.ias is None:
            raise Denied(Reason("sgx.ias", "EPID evidence needs IAS, which is not configured on this VM"))
        try:
            claims = self.ias.verify(quote, at=at)
        except FtrustError as e:
            raise Denied(error_reason("sgx.ias", e)) from None
        return VerifiedQuote(claims)


def platform_json(claims: EnclaveClaims | None) -> dict[str, Any] | None:
    """The platform identity of verified claims, as recorded with a host and in audit evidence."""
    if claims is None:
        return None
    p = claims.platform
    return {k: getattr(p, k) for k in ("fmspc", "pce_id", "pck_certificate_sha256", "epid_group_id", "epid_pseudonym")}
