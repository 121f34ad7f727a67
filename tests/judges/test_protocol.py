"""The checks both judges share, each passing and failing: the nonce and the quote outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest

from floodlight_trust.judges.protocol import Checks, check_nonce, check_quote
from floodlight_trust.reasons import Reason, ReasonLevel
from tests.judges.support import AT, NONCE, claims, nonce


def test_a_fresh_nonce_for_this_purpose_host_and_vnf_passes() -> None:
    assert check_nonce(nonce(), NONCE, purpose="host", host="h1", vnf=None, at=AT) == []
    enclave = nonce("enclave", vnf="vnf-a")
    assert check_nonce(enclave, NONCE, purpose="enclave", host="h1", vnf="vnf-a", at=AT) == []


@pytest.mark.parametrize(
    ("stored", "value", "purpose", "host", "vnf", "words"),
    [
        (None, NONCE, "host", "h1", None, "nonce unknown"),
        (nonce(used_at=AT - timedelta(seconds=1)), NONCE, "host", "h1", None, "nonce replayed"),
        (nonce(expires_at=AT), NONCE, "host", "h1", None, "nonce expired"),
        (nonce(), NONCE, "enclave", "h1", "vnf-a", "issued for host evidence, not enclave evidence"),
        (nonce(), NONCE, "host", "h2", None, "issued for host 'h1', not 'h2'"),
        (nonce("enclave", vnf="vnf-a"), NONCE, "enclave", "h1", "vnf-b", "issued for VNF 'vnf-a', not 'vnf-b'"),
        (nonce(), NONCE[:16], "host", "h1", None, "nonce must be 32 bytes"),
    ],
)
def test_every_stale_or_misdirected_nonce_is_a_protocol_nonce_reason(
    stored: object, value: bytes, purpose: str, host: str, vnf: str | None, words: str
) -> None:
    [reason] = check_nonce(stored, value, purpose=purpose, host=host, vnf=vnf, at=AT)  # type: ignore[arg-type]
    assert reason.rule == "protocol.nonce" and reason.denies and words in reason.message


def test_the_quote_outcome_is_the_claims_or_its_reason() -> None:
    assert check_quote(claims(bytes(64))) == []
    failed = Reason("sgx.quote", "the QE report signature does not verify")
    assert check_quote(failed) == [failed]
    assert check_quote(None) == []  # not verified because an earlier check failed (and reported)


def test_checks_run_every_check_and_keep_every_reason() -> None:
    c = Checks()
    assert not c.run("a", lambda: [Reason("a", "first")])
    assert c.run("b", lambda: [Reason.note("b", "information")])  # a note does not fail a check
    assert not c.run("c", lambda: [Reason("c", "third")])
    assert c.ran == ["a", "b", "c"] and [r.rule for r in c.reasons] == ["a", "b", "c"]
    assert not c.passed and [r.level for r in c.reasons] == [ReasonLevel.DENY, ReasonLevel.NOTE, ReasonLevel.DENY]
