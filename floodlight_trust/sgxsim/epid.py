"""The SIMULATED EPID signature: what :meth:`SimulatedPlatform.epid_quote` writes in place of a real
EPID signature, and its check (by the simulated IAS, :mod:`floodlight_trust.sgxsim.ias_service`)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.evidence.sgx_quote import SIGNED_SIZE, EpidQuote

# The service provider's basename (from its SPID) for linkable EPID quotes: quotes of one platform
# with one basename carry the same pseudonym.
SIM_EPID_BASENAME = hashlib.sha256(b"floodlight-trust SIMULATED SPID basename").digest()
EPID_PSEUDONYM_SIZE = 128  # B || K, as at the start of a real EPID signature
EPID_MAGIC = b"floodlight-trust SIMULATED EPID signature v1"


def verify_simulated_epid_signature(quote: EpidQuote, group_public_key: ec.EllipticCurvePublicKey) -> bool:
    """True when ``quote`` carries a simulated EPID signature by ``group_public_key``'s group."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    sig = quote.signature
    if sig is None or len(sig) != EPID_PSEUDONYM_SIZE + 64 + len(EPID_MAGIC) or not sig.endswith(EPID_MAGIC):
        return False
    pseudonym, rs = sig[:EPID_PSEUDONYM_SIZE], sig[EPID_PSEUDONYM_SIZE : EPID_PSEUDONYM_SIZE + 64]
    der = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    try:
        group_public_key.verify(der, quote.raw[:SIGNED_SIZE] + pseudonym, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
