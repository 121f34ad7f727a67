"""GET /metrics and GET /v1/health on every listener: the Prometheus figures an operator alerts on."""

from __future__ import annotations

import requests

from tests.support.world import World


def scrape(url: str, verify: str | bool = True) -> dict[str, float]:
    r = requests.get(url, timeout=10, verify=verify)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    values = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_count_attestations_denials_enrollments_revocations_and_expiry(world: World) -> None:
    pin = str(world.service.tls_certificate)
    api = world.service.api_url
    before = scrape(f"{api}/metrics", pin)
    host = world.start_host()
    host.add_vnf("vnf-fw-metrics")
    host.add_vnf("vnf-fw-metrics-other", b"another enclave image")
    assert world.admin.enroll(host.name, "vnf-fw-metrics")["allowed"]
    refused = world.admin.enroll(host.name, "vnf-fw-metrics-other")
    assert not refused["allowed"]
    world.admin.revoke(vnf="vnf-fw-metrics", reason="metrics test")
    world.admin.reattest(host.name)
    after = scrape(f"{api}/metrics", pin)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew('ftrust_attestations_total{kind="host",outcome="trusted"}') >= 1
    assert grew('ftrust_enrollments_total{outcome="issued"}') >= 1
    assert grew('ftrust_enrollments_total{outcome="refused"}') >= 1
    assert sum(grew(k) for k in after if k.startswith("ftrust_denials_total{")) >= 1
    assert grew('ftrust_revocations_total{cause="superseded"}') >= 1
    assert grew("ftrust_reattest_round_seconds_count") >= 1
    assert grew('ftrust_http_requests_total{listener="vm-api",status="2xx"}') >= 5
    assert 0 < after["ftrust_ca_expiry_horizon_seconds"]
    assert "ftrust_certificate_expiry_horizon_seconds" in after


def test_every_listener_answers_health_and_metrics(world: World) -> None:
    host = world.start_host()
    pin = str(world.service.tls_certificate)
    assert requests.get(f"{world.service.api_url}/v1/health", verify=pin, timeout=10).json()["status"] == "ok"
    assert requests.get(f"{world.service.publish.url}/v1/health", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{host.url}/v1/health", timeout=10).json() == {"status": "ok", "host": host.name, "backend": "sim"}
    for url in (f"{world.service.publish.url}/metrics", f"{host.url}/metrics"):
        assert "ftrust_http_requests_total" in "".join(scrape(url))
