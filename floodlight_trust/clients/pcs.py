"""Client for Intel's PCS API v4 and a local PCCS: DCAP collateral fetched and cached on disk.

Responses are cached (body + issuer-chain header) until their ``nextUpdate``; the cache holds
exactly what the service sent, so the signatures stay checkable. Nothing here verifies anything:
hand the resulting :class:`Collateral` to :func:`floodlight_trust.evidence.dcap.verify_quote`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import urllib3
from cryptography import x509

from floodlight_trust import clock
from floodlight_trust.clients import httpclient
from floodlight_trust.errors import ConfigError, ParseError, ServiceError
from floodlight_trust.evidence.collateral import Collateral, crl_to_der, split_signed_json
from floodlight_trust.evidence.sgx_quote import SGX_EXTENSIONS_OID, QuoteV3, parse_pck_extensions, parse_quote
from floodlight_trust.fileio import atomic_write

INTEL_PCS = "https://api.trustedservices.intel.com/sgx/certification/v4"
INTEL_ROOT_CRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

TCB_CHAIN_HEADERS = ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
QE_CHAIN_HEADERS = ("SGX-Enclave-Identity-Issuer-Chain",)
CRL_CHAIN_HEADERS = ("SGX-PCK-CRL-Issuer-Chain",)


class PcsClient:
    """Fetch TCB info, QE identity, PCK CRL and root CA CRL from PCS or a PCCS at ``url``."""

    def __init__(
        self,
        url: str = INTEL_PCS,
        *,
        cache_dir: Path | None = None,
        root_ca_crl_url: str | None = None,
        timeout: float = 20.0,
        pool: urllib3.PoolManager | None = None,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"PCS/PCCS URL {url!r} is not an http(s) URL", hint=f"e.g. {INTEL_PCS}")
        self.url = url.rstrip("/")
        self.cache_dir = cache_dir
        self.root_ca_crl_url = root_ca_crl_url or (INTEL_ROOT_CRL if self.url == INTEL_PCS else f"{self.url}/rootcacrl")
        self.timeout = timeout
        self.pool = pool if pool is not None else httpclient.new_pool(timeout=timeout)
        self._now = now

    # -- one document each -------------------------------------------------------------------------

    def tcb_info(self, fmspc: str) -> tuple[bytes, bytes, bytes]:
        """(exact tcbInfo bytes, signature, issuer chain PEM) for an FMSPC (hex)."""
        body, chain = self._get(
            f"{self.url}/tcb?fmspc={fmspc.upper()}", TCB_CHAIN_HEADERS, f"TCB info for FMSPC {fmspc}", "json"
        )
        raw, sig = split_signed_json(body, "tcbInfo", "TCB info")
        return raw, sig, chain

    def qe_identity(self) -> tuple[bytes, bytes, bytes]:
        body, chain = self._get(f"{self.url}/qe/identity", QE_CHAIN_HEADERS, "QE identity", "json")
        raw, sig = split_signed_json(body, "enclaveIdentity", "QE identity")
        return raw, sig, chain

    def pck_crl(self, ca: str = "processor") -> tuple[bytes, bytes]:
        """(DER CRL, issuer chain PEM) for the PCK ``processor`` or ``platform`` CA."""
        if ca not in ("processor", "platform"):
            raise ValueError("ca must be 'processor' or 'platform'")
        body, chain = self._get(f"{self.url}/pckcrl?ca={ca}&encoding=der", CRL_CHAIN_HEADERS, f"PCK CRL ({ca})", "crl")
        return crl_to_der(body), chain

    def root_ca_crl(self) -> bytes:
        body, _ = self._get(self.root_ca_crl_url, (), "root CA CRL", "crl")
        return crl_to_der(body)

    def collateral_for_quote(self, quote: bytes) -> Collateral:
        """Everything needed to verify ``quote``: FMSPC and CA type come from its PCK certificate."""
        q = parse_quote(quote)
        if not isinstance(q, QuoteV3):
            raise ParseError("an EPID quote has no DCAP collateral (verify it with IAS)")
        blocks = q.pck_chain_pem()
        if not blocks:
            raise ParseError("the quote carries no PCK certificate")
        try:
            leaf = x509.load_pem_x509_certificate(blocks[0])
            ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID)).value
        except (ValueError, x509.ExtensionNotFound) as e:
            raise ParseError(f"the quote's PCK certificate is unusable: {e}") from None
        fmspc = parse_pck_extensions(ext.value).fmspc.hex()  # type: ignore[attr-defined]
        ca = "platform" if "Platform" in leaf.issuer.rfc4514_string() else "processor"
        tcb, tcb_sig, tcb_chain = self.tcb_info(fmspc)
        qe, qe_sig, qe_chain = self.qe_identity()
        pck_crl, crl_chain = self.pck_crl(ca)
        return Collateral(tcb, tcb_sig, tcb_chain, qe, qe_sig, qe_chain, self.root_ca_crl(), pck_crl, crl_chain)

    # -- HTTP and cache ------------------------------------------------------------------------

    def _cache_file(self, url: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")

    def _get(self, url: str, chain_headers: tuple[str, ...], what: str, kind: str) -> tuple[bytes, bytes]:
        cached = self._cache_file(url)
        if cached is not None and cached.is_file():
            try:
                entry = json.loads(cached.read_text())
                if datetime.fromisoformat(entry["next_update"]) > self._now():
                    return base64.b64decode(entry["body"]), entry["chain"].encode()
            except (ValueError, KeyError, OSError):
                pass  # a damaged cache entry is refetched
        try:
            r = httpclient.send(self.pool, "GET", url, what="the PCS/PCCS")
        except ServiceError as e:
            raise ServiceError(f"cannot fetch {what}: {e.message}") from None
        if r.status == 404:
            raise ServiceError(f"{what}: the service has none (HTTP 404 from {url})", hint="check the FMSPC / CA type")
        if r.status != 200:
            raise ServiceError(f"cannot fetch {what}: HTTP {r.status} {r.reason} from {url}")
        chain = b""
        if chain_headers:
            value = next((r.headers[h] for h in chain_headers if h in r.headers), None)
            if value is None:
                raise ServiceError(f"{what}: response lacks the issuer chain header ({chain_headers[0]})")
            chain = urllib.parse.unquote(value).encode()
        body = r.data
        if cached is not None and self.cache_dir is not None:
            next_update = _next_update(body, kind)
            if next_update is not None:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                entry = {
                    "url": url,
                    "body": base64.b64encode(body).decode(),
                    "chain": chain.decode(),
                    "next_update": next_update.isoformat(),
                }
                atomic_write(cached, json.dumps(entry), mode=0o644)
        return body, chain


def _next_update(body: bytes, kind: str) -> datetime | None:
    try:
        if kind == "json":
            outer = json.loads(body)
            inner = outer.get("tcbInfo") or outer.get("enclaveIdentity") or {}
            return datetime.fromisoformat(str(inner["nextUpdate"]).replace("Z", "+00:00"))
        return x509.load_der_x509_crl(crl_to_der(body)).next_update_utc
    except (ValueError, KeyError, AttributeError, ParseError):
        return None
