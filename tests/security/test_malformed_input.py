"""Issue 11.8 (and 11.3's typed errors): input that once produced a 500 and a logged traceback.

Each attack is sent for real over HTTPS (or plain HTTP for OCSP) to a running VM; each must get a
4xx with a one-line reason (or, for evidence that parses but does not verify, a recorded denial),
no traceback in the VM's log, and replies that never echo more than a short prefix of the input.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.support.world import World


def post(world: World, path: str, body: bytes | str, content_type: str = "application/json") -> requests.Response:
    return requests.post(
        world.service.api_url + path,
        data=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": content_type},
        verify=str(world.service.tls_certificate),
        timeout=30,
    )


def one_line_4xx(r: requests.Response, *, contains: str, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    doc = r.json()
    message = doc["error"]["message"]
    assert contains in message, message
    assert "\n" not in message and len(r.content) < 2048
    return doc


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield caplog
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


def host_evidence(world: World) -> tuple[str, dict[str, Any]]:
    host = world.start_host()
    nonce = world.anonymous.nonce("host", host.name)
    return host.name, host.agent.host_evidence(nonce)


def test_deeply_nested_json_is_a_400(deployment: World, no_tracebacks: Any) -> None:
    for depth in (50, 100_000):
        r = post(deployment, "/v1/attest/host", "[" * depth + "]" * depth)
        one_line_4xx(r, contains="nested deeper than")
    _, ev = host_evidence(deployment)
    nested: Any = {}
    for _ in range(200):
        nested = {"a": nested}
    ev["collateral"] = nested
    one_line_4xx(post(deployment, "/v1/attest/host", json.dumps(ev)), contains="nested deeper than")


def test_a_5000_digit_integer_is_a_400(deployment: World, no_tracebacks: Any) -> None:
    _, ev = host_evidence(deployment)
    body = json.dumps(ev).replace('"ima_offset": 0', '"ima_offset": ' + "9" * 5000)
    assert "9" * 5000 in body
    one_line_4xx(post(deployment, "/v1/attest/host", body), contains="not acceptable JSON")


def test_a_lone_surrogate_in_collateral_is_a_400(deployment: World, no_tracebacks: Any) -> None:
    _, ev = host_evidence(deployment)
    ev["collateral"]["tcb_info"] = "\ud800"
    body = json.dumps(ev)  # ensure_ascii: "\\ud800" on the wire, as the attacker sent it
    assert "\\ud800" in body
    one_line_4xx(post(deployment, "/v1/attest/host", body), contains="lone surrogate")


def test_a_huge_invalid_field_is_not_echoed(deployment: World, no_tracebacks: Any) -> None:
    _, ev = host_evidence(deployment)
    ev["host"] = "!" * 4_000_000
    r = post(deployment, "/v1/attest/host", json.dumps(ev))
    doc = one_line_4xx(r, contains="invalid host_evidence message at /host")
    assert len(doc["error"]["message"]) < 300


def _judged(world: World, ev: dict[str, Any]) -> dict[str, Any]:
    """Tampered evidence that still parses: a 4xx, or a recorded denial naming why; never a 500."""
    r = post(world, "/v1/attest/host", json.dumps(ev))
    assert r.status_code in (200, 400, 403), (r.status_code, r.text[:300])
    doc = r.json()
    if r.status_code == 200:
        assert doc["trusted"] is False and doc["reasons"], doc
        assert all("\n" not in x["message"] for x in doc["reasons"])
    return doc


def test_one_changed_byte_in_the_quotes_pck_certificate_pem(deployment: World, no_tracebacks: Any) -> None:
    _, ev = host_evidence(deployment)
    quote = bytes(base64.b64decode(ev["quote"]))
    first = quote.index(b"-----BEGIN CERTIFICATE-----\n")
    end = quote.index(b"-----END CERTIFICATE-----", first)
    # 16 positions across the PCK certificate's PEM (header, base64 body, footer), two substitutions each.
    for position in range(first, end + 25, max(1, (end + 25 - first) // 16)):
        for replacement in (b"!", b"A" if quote[position : position + 1] != b"A" else b"B"):
            tampered = quote[:position] + replacement + quote[position + 1 :]
            ev["quote"] = base64.b64encode(tampered).decode()
            doc = _judged(deployment, ev)
            assert not doc.get("trusted"), position


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pck_crl_issuer_chain", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ("tcb_info_issuer_chain", "not a chain at all"),
        ("pck_crl", "30820102"),  # a DER SEQUENCE header with nothing after it
        ("root_ca_crl", "zz"),
        ("tcb_info", '{"tcbInfo": 5}'),
        ("qe_identity_signature", ""),
    ],
)
def test_malformed_collateral_chains_and_crls(deployment: World, no_tracebacks: Any, field: str, value: str) -> None:
    _, ev = host_evidence(deployment)
    assert field in ev["collateral"], sorted(ev["collateral"])
    ev["collateral"][field] = value
    doc = _judged(deployment, ev)
    assert not doc.get("trusted")


def _ocsp_request(world: World, serial: int) -> bytes:
    """A well-formed OCSP request about ``serial`` under the VM's CA (SHA-1 CertID, as the JDK sends)."""
    ca = x509.load_pem_x509_certificate(world.ca.certificate_pem)
    key_bits = ca.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        issuer_name_hash=hashlib.sha1(ca.subject.public_bytes()).digest(),
        issuer_key_hash=hashlib.sha1(key_bits).digest(),
        serial_number=serial,
        algorithm=hashes.SHA1(),
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_the_ocsp_request_builder_is_answered(deployment: World) -> None:
    """The control: the unmodified request reaches the responder (answered 'unknown')."""
    r = requests.post(f"{deployment.service.publish.url}/ocsp", data=_ocsp_request(deployment, 0x42), timeout=10)
    answer = ocsp.load_der_ocsp_response(r.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize("attack", ["unknown hash OID", "negative serial", "truncated", "not DER"])
def test_malformed_ocsp_requests_get_malformed_request(deployment: World, no_tracebacks: Any, attack: str) -> None:
    der = bytearray(_ocsp_request(deployment, 0x42))
    sha1 = bytes.fromhex("06052b0e03021a")
    if attack == "unknown hash OID":
        at = der.index(sha1)
        der[at + 6] = 0x1B  # 1.3.14.3.2.27: no such digest
    elif attack == "negative serial":
        at = der.rindex(bytes.fromhex("020142"))
        der[at + 2] = 0xC2  # the same one-byte INTEGER, now negative
    elif attack == "truncated":
        der = der[: len(der) // 2]
    else:
        der = bytearray(b"GET / HTTP/1.0\r\n\r\n")
    r = requests.post(
        f"{deployment.service.publish.url}/ocsp",
        data=bytes(der),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    # RFC 6960 2.3: a malformed request is answered with the malformedRequest status (HTTP 200).
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/ocsp-response", r.content[:200]
    assert ocsp.load_der_ocsp_response(r.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    get = requests.get(
        f"{deployment.service.publish.url}/ocsp/{base64.b64encode(bytes(der)).decode()}", timeout=10
    )  # the GET form: the same answer
    assert ocsp.load_der_ocsp_response(get.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.parametrize(
    "url",
    ["not a url", "http://[::1", "file:///etc/passwd", "http://127.0.0.1:99999", "https://", "http://h/\r\nX: y"],
)
def test_a_malformed_agent_url_is_refused_at_registration(deployment: World, no_tracebacks: Any, url: str) -> None:
    name = deployment.unique("badurl")
    with pytest.raises(Exception) as refused:
        deployment.admin.add_host(name, url)
    assert "agent_url" in str(refused.value)
    assert name not in [h["name"] for h in deployment.admin.hosts()]


@pytest.mark.parametrize(
    "raw",
    [
        b"BREW /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /v1/attest/host HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/attest/host HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    ],
)
def test_malformed_http_is_a_400_without_a_traceback(deployment: World, no_tracebacks: Any, raw: bytes) -> None:
    import socket

    from tests.support.attacks import insecure_client_context

    for port, tls in ((deployment.service.api.port, True), (deployment.service.publish.port, False)):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls:
            sock = insecure_client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(raw)
        answer = sock.recv(200)
        sock.close()
        assert answer.split(b"\r\n")[0].split(b" ")[1] in (b"400", b"431"), answer[:80]
