"""The Prometheus metrics of floodlight-trust: one home for every counter the services keep.

Every metric lives in :data:`REGISTRY` (the project's own registry, so a test or a second VM in the
same process never collides with another library's metrics; the process collector is added so the
operator still sees CPU, memory and file descriptors). The shell records events here; the core
(evidence, policy, judges) never imports this module. ``GET /metrics`` on every listener serves
:func:`render`.

Labels are closed sets or stable codes (reason codes such as ``host.ima.unknown_file``, listener
names, route patterns): never a host name, a VNF name or anything a client chose, so an
unauthenticated client cannot grow the series without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

ATTESTATIONS = Counter(
    "ftrust_attestations",
    "Host and enclave attestations judged, by kind (host, enclave) and outcome (trusted, untrusted, error)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
DENIALS = Counter(
    "ftrust_denials",
    "Reasons given for refusing a host or an enclave, by stable reason code",
    ["code"],
    registry=REGISTRY,
)
ENROLLMENTS = Counter(
    "ftrust_enrollments",
    "VNF enrollments decided, by outcome (issued, kept, refused)",
    ["outcome"],
    registry=REGISTRY,
)
REVOCATIONS = Counter(
    "ftrust_revocations",
    "Certificates revoked, by cause (host, vnf, policy, admin, ...)",
    ["cause"],
    registry=REGISTRY,
)
REATTEST_ROUND_SECONDS = Histogram(
    "ftrust_reattest_round_seconds",
    "Duration of one re-attestation round over every trusted host",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
REATTEST_HOST_FAILURES = Counter(
    "ftrust_reattest_host_failures",
    "Hosts whose judging failed in a round (contained to that host), by error type",
    ["error"],
    registry=REGISTRY,
)
UNAUTHENTICATED_REJECTS = Counter(
    "ftrust_unauthenticated_rejects",
    "Requests refused before any evidence verified (they create no rows), by endpoint and reason",
    ["endpoint", "reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "ftrust_http_requests",
    "HTTP requests answered, by listener (vm-api, vm-publish, agent) and status class (2xx, 4xx, 5xx)",
    ["listener", "status"],
    registry=REGISTRY,
)
CERTIFICATE_EXPIRY_HORIZON = Gauge(
    "ftrust_certificate_expiry_horizon_seconds",
    "Seconds until the soonest active VNF certificate expires (absent until a VM registers its source)",
    registry=REGISTRY,
)
CA_EXPIRY_HORIZON = Gauge(
    "ftrust_ca_expiry_horizon_seconds",
    "Seconds until the VM's CA certificate expires",
    registry=REGISTRY,
)


def count_denials(codes: list[str] | tuple[str, ...]) -> None:
    """One increment per reason code of a refusal."""
    for code in codes:
        DENIALS.labels(code=code).inc()


def count_unauthenticated(endpoint: str, reason: str) -> None:
    """A request refused before any evidence verified: counted here instead of stored anywhere."""
    UNAUTHENTICATED_REJECTS.labels(endpoint=endpoint, reason=reason).inc()


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def watch_expiry(
    soonest_certificate: Callable[[], datetime | None],
    ca_not_after: Callable[[], datetime | None],
    now: Callable[[], datetime],
) -> None:
    """Compute the expiry horizons at scrape time from the VM's records (the latest VM to call wins).

    With no active certificate the horizon is reported as 0 only if nothing is known; a scrape
    never raises (a failing source reports -1, which an alert on ``< 0`` catches)."""

    def horizon(source: Callable[[], datetime | None]) -> Callable[[], float]:
        def value() -> float:
            try:
                at = source()
            except Exception:  # a scrape must not fail because the state store is busy
                return -1.0
            return 0.0 if at is None else (at - now()).total_seconds()

        return value

    CERTIFICATE_EXPIRY_HORIZON.set_function(horizon(soonest_certificate))
    CA_EXPIRY_HORIZON.set_function(horizon(ca_not_after))


def render() -> tuple[bytes, str]:
    """The exposition text of every metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
