"""PCS/PCCS client against a local HTTP server serving the real Phala collateral."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.claims import TcbStatus
from floodlight_trust.clients.pcs import PcsClient
from floodlight_trust.clock import parse_time
from floodlight_trust.errors import ServiceError
from floodlight_trust.evidence import dcap
from tests.support.pcs import FakePcs

AT = parse_time("2025-06-20T00:00:00Z")


@pytest.fixture
def pcs(testdata: Path) -> Iterator[tuple[FakePcs, str]]:
    collateral = json.loads((testdata / "sgx-dcap/phala/sgx_quote_collateral.json").read_text())
    with FakePcs.from_dcap_qvl_json(collateral, fmspc="00A067110000") as app:
        yield app, app.url


def test_fetch_collateral_and_verify(pcs: tuple[FakePcs, str], testdata: Path, tmp_path: Path) -> None:
    app, url = pcs
    quote = (testdata / "sgx-dcap/phala/sgx_quote").read_bytes()
    client = PcsClient(url, cache_dir=tmp_path / "cache", now=lambda: AT)
    collateral = client.collateral_for_quote(quote)
    r = dcap.verify_quote(quote, collateral, dcap.TrustAnchor.intel(), at=AT)
    assert r.claims.tcb_status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert len(app.requests) == 4
    again = client.collateral_for_quote(quote)  # served from the disk cache until nextUpdate
    assert again == collateral and len(app.requests) == 4
    later = PcsClient(url, cache_dir=tmp_path / "cache", now=lambda: parse_time("2025-08-01T00:00:00Z"))
    later.collateral_for_quote(quote)  # past nextUpdate: fetched again, except the root CA CRL (2026)
    assert len(app.requests) == 7
    assert "/sgx/certification/v4/rootcacrl" not in app.requests[4:]


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
