"""Issue 8: a revocation decided by the Verification Manager reaches a RUNNING controller.

The Java endpoint runs with Floodlight's revocation flags (docs/floodlight.md) and is never
restarted: the point is that the running JVM refuses the revoked VNF's next connection. The delay
from the decision (``VerificationManager.revoke``) to the first refused connection is measured and
must stay within the documented bound (``bridge.crl_revocation_bound_seconds`` /
``bridge.ocsp_revocation_bound_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from floodlight_trust.floodlight import bridge, client
from tests.support.floodlight import STORE_PASSWORD, write_keystore
from tests.support.world import World, enrolled_vnf, make_world

CRL_TIMEOUT = 5
OCSP_TIMEOUT = 5
PROBE_EVERY = 0.25


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("revocation"), crl_port=bridge._free_port("127.0.0.1"))


def refusal_delay(
    world: World, endpoint: bridge.FloodlightEndpoint, vnf: str, cert: Path, key: Path, ca: Path
) -> float:
    """Connect (accepted), revoke, then probe with fresh connections until one is refused."""
    before = client.check(endpoint.url, cert, key, ca, path=client.SWITCHES_PATH)
    assert before.accepted and before.status == 200, before
    decided = time.monotonic()
    assert world.service.vm.revocation.revoke(vnf=vnf, reason="revocation delay test", actor="test")
    bound = time.monotonic() + 120
    while time.monotonic() < bound:
        result = client.check(endpoint.url, cert, key, ca, path=client.SWITCHES_PATH)
        if result.refused:
            return time.monotonic() - decided
        assert result.accepted and result.status == 200, result
        time.sleep(PROBE_EVERY)
    raise AssertionError("the revoked certificate was still accepted after 120 s")


def test_crl_endpoint_sends_no_stale_last_modified(deployment: World) -> None:
    r = requests.get(f"{deployment.service.publish.url}/crl.der", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pkix-crl"
    assert "Last-Modified" not in r.headers  # else the JDK keeps its cached CRL (If-Modified-Since)


def test_ocsp_revocation_reaches_the_running_controller_within_the_bound(
    deployment: World, tmp_path: Path, bridge_jar: Path
) -> None:
    keystore, server_pem = write_keystore(tmp_path, deployment.ca)
    cert, key = enrolled_vnf(deployment, tmp_path, "vnf-fw-ocsp")
    with bridge.FloodlightEndpoint(
        keystore, STORE_PASSWORD, pkix_revocation=True, crl_timeout_seconds=CRL_TIMEOUT,
        ocsp=True, ocsp_timeout_seconds=OCSP_TIMEOUT,
    ) as endpoint:  # fmt: skip
        assert any(f.startswith("-Djava.security.properties=") for f in endpoint.jvm_flags)
        answers = deployment.service.publisher.ocsp_answers
        delay = refusal_delay(deployment, endpoint, "vnf-fw-ocsp", cert, key, server_pem)
        assert deployment.service.publisher.ocsp_answers > answers  # the JVM asked the VM's OCSP responder
    print(f"OCSP: revoked -> first refused connection in {delay:.2f} s")
    assert delay <= bridge.ocsp_revocation_bound_seconds(OCSP_TIMEOUT)


def test_crl_revocation_reaches_the_running_controller_within_the_bound(
    deployment: World, tmp_path: Path, bridge_jar: Path
) -> None:
    keystore, server_pem = write_keystore(tmp_path, deployment.ca)
    cert, key = enrolled_vnf(deployment, tmp_path, "vnf-fw-crl")
    with bridge.FloodlightEndpoint(
        keystore, STORE_PASSWORD, pkix_revocation=True, crl_timeout_seconds=CRL_TIMEOUT
    ) as endpoint:
        # The worst case: the JVM fetched (and cached) the CRL just before the revocation.
        delay = refusal_delay(deployment, endpoint, "vnf-fw-crl", cert, key, server_pem)
    print(f"CRL: revoked -> first refused connection in {delay:.2f} s")
    assert delay <= bridge.crl_revocation_bound_seconds(CRL_TIMEOUT)
