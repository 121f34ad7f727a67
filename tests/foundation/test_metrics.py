"""The metrics module: every metric is exposed, labels come from closed sets, scrapes never raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from floodlight_trust import metrics


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_every_metric_is_exposed_with_its_help() -> None:
    metrics.count_denials(["host.ima.unknown_file", "host.ima.unknown_file"])
    metrics.count_unauthenticated("/v1/attest/host", "schema")
    body, ctype = metrics.render()
    text = body.decode()
    assert ctype.startswith("text/plain")
    for name in (
        "ftrust_attestations_total",
        "ftrust_denials_total",
        "ftrust_enrollments_total",
        "ftrust_revocations_total",
        "ftrust_reattest_round_seconds",
        "ftrust_reattest_host_failures_total",
        "ftrust_unauthenticated_rejects_total",
        "ftrust_http_requests_total",
        "ftrust_certificate_expiry_horizon_seconds",
    ):
        assert f"# HELP {name.removesuffix('_total')}" in text or f"# HELP {name}" in text, name
    assert _value(text, 'ftrust_denials_total{code="host.ima.unknown_file"}') >= 2
    assert _value(text, 'ftrust_unauthenticated_rejects_total{endpoint="/v1/attest/host",reason="schema"}') >= 1


def test_expiry_horizon_is_computed_at_scrape_time_and_never_raises() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    metrics.watch_expiry(lambda: now + timedelta(hours=2), lambda: now + timedelta(days=3), lambda: now)
    text = metrics.render()[0].decode()
    assert _value(text, "ftrust_certificate_expiry_horizon_seconds") == 7200
    assert _value(text, "ftrust_ca_expiry_horizon_seconds") == 3 * 86400

    def broken() -> datetime:
        raise RuntimeError("database is locked")

    metrics.watch_expiry(broken, lambda: None, lambda: now)
    text = metrics.render()[0].decode()
    assert _value(text, "ftrust_certificate_expiry_horizon_seconds") == -1
    assert _value(text, "ftrust_ca_expiry_horizon_seconds") == 0
