"""Quote verification for the workflow: DCAP quotes against the trust anchors, EPID quotes via IAS.

The same code judges real and simulated roots; a simulated root is named in every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from floodlight_trust.claims import EnclaveClaims, EvidenceType
from floodlight_trust.errors import FtrustError
from floodlight_trust.protocol.evidence import Unparsed
from floodlight_trust.reasons import Reason

if TYPE_CHECKING:
    from floodlight_trust.evidence.collateral import Collateral
    from floodlight_trust.evidence.dcap import TrustAnchor
    from floodlight_trust.manager.sgx import CollateralFetcher, IasVerifier

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
