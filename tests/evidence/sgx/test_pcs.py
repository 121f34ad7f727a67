"""PCS/PCCS client against a local HTTP server serving the real Phala collateral."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.claims import TcbStatus
from floodlight_trust.clients.pcs import PcsClient
from floodlight_trust.clock import parse_time
from floodlight_trust.errors import ServiceError
from floodlight_trust.evidence import dcap
from floodlight_trust.http.server import HttpServer, JsonApp, RawResponse, Request

AT = parse_time("2025-06-20T00:00:00Z")


class FakePcs:
    """Serves Phala's collateral as PCS v4 would (body + issuer-chain headers)."""

    def __init__(self, collateral: dict[str, str]) -> None:
        c = collateral
        self.hits: list[str] = []
        self.routes: dict[str, tuple[bytes, list[tuple[str, str]]]] = {
            "/sgx/certification/v4/tcb?fmspc=00A067110000": (
                b'{"tcbInfo":' + c["tcb_info"].encode() + b',"signature":"' + c["tcb_info_signature"].encode() + b'"}',
                [("TCB-Info-Issuer-Chain", urllib.parse.quote(c["tcb_info_issuer_chain"]))],
            ),
            "/sgx/certification/v4/qe/identity": (
                b'{"enclaveIdentity":'
                + c["qe_identity"].encode()
                + b',"signature":"'
                + c["qe_identity_signature"].encode()
                + b'"}',
                [("SGX-Enclave-Identity-Issuer-Chain", urllib.parse.quote(c["qe_identity_issuer_chain"]))],
            ),
            "/sgx/certification/v4/pckcrl?ca=processor&encoding=der": (
                bytes.fromhex(c["pck_crl"]),
                [("SGX-PCK-CRL-Issuer-Chain", urllib.parse.quote(c["pck_crl_issuer_chain"]))],
            ),
            "/sgx/certification/v4/rootcacrl": (c["root_ca_crl"].encode(), []),  # PCCS serves hex
        }

    def __call__(self, request: Request, rest: str = "") -> RawResponse:
        path = request.path + ("?" + request.query_string if request.query_string else "")
        self.hits.append(path)
        if path == "/sgx/certification/v4/broken":
            return RawResponse(500, "text/plain", b"")
        if path not in self.routes:
            return RawResponse(404, "text/plain", b"")
        body, headers = self.routes[path]
        return RawResponse(200, "application/octet-stream", body, tuple(headers))


@pytest.fixture
def pcs(testdata: Path) -> Iterator[tuple[FakePcs, str]]:
    app = FakePcs(json.loads((testdata / "sgx-dcap/phala/sgx_quote_collateral.json").read_text()))
    router = JsonApp(name="fake-pcs")
    router.route("GET", "/{rest*}")(app)
    server = HttpServer(router, host="127.0.0.1", port=0, threads=2, name="fake-pcs").start()
    yield app, f"http://127.0.0.1:{server.port}/sgx/certification/v4"
    server.stop()


def test_fetch_collateral_and_verify(pcs: tuple[FakePcs, str], testdata: Path, tmp_path: Path) -> None:
    app, url = pcs
    quote = (testdata / "sgx-dcap/phala/sgx_quote").read_bytes()
    client = PcsClient(url, cache_dir=tmp_path / "cache", now=lambda: AT)
    collateral = client.collateral_for_quote(quote)
    r = dcap.verify_quote(quote, collateral, dcap.TrustAnchor.intel(), at=AT)
    assert r.claims.tcb_status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert len(app.hits) == 4
    again = client.collateral_for_quote(quote)  # served from the disk cache until nextUpdate
    assert again == collateral and len(app.hits) == 4
    later = PcsClient(url, cache_dir=tmp_path / "cache", now=lambda: parse_time("2025-08-01T00:00:00Z"))
    later.collateral_for_quote(quote)  # past nextUpdate: fetched again, except the root CA CRL (2026)
    assert len(app.hits) == 7
    assert "/sgx/certification/v4/rootcacrl" not in app.hits[4:]


def test_unknown_fmspc_and_http_errors(pcs: tuple[FakePcs, str]) -> None:
    _, url = pcs
    client = PcsClient(url)
    with pytest.raises(ServiceError, match=r"TCB info for FMSPC 00906ed50000: the service has none \(HTTP 404"):
        client.tcb_info("00906ed50000")
    with pytest.raises(ServiceError, match="HTTP 500"):
        client._get(url + "/broken", (), "thing", "json")
    with pytest.raises(ServiceError, match="cannot fetch"):
        PcsClient("http://127.0.0.1:9/x", timeout=2).qe_identity()


def test_proxy_variables_are_ignored(pcs: tuple[FakePcs, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The one HTTP stack (floodlight_trust.clients.httpclient) takes nothing from the environment: a proxy
    # variable pointing nowhere changes nothing.
    _, url = pcs
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    raw, _sig, chain = PcsClient(url).qe_identity()
    assert raw.startswith(b"{") and b"BEGIN CERTIFICATE" in chain
