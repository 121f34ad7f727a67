"""The binding of the two roots of trust (docs/protocol.md): the TPM quote's qualifying data is
domain-separated from REPORTDATA, and REPORTDATA covers the TPM quote's exact bytes."""

from __future__ import annotations

import hashlib

import pytest

from floodlight_trust.errors import InputError
from floodlight_trust.protocol.binding import (
    host_report_data_for_digest,
    host_report_data_with_tpm,
    tpm_qualifying_data,
)

NONCE = bytes(range(32))
LIST = hashlib.sha256(b"10 ... ima-ng sha256:... boot_aggregate\n").digest()


def test_qualifying_data_is_a_labelled_hash_of_the_nonce() -> None:
    q = tpm_qualifying_data(NONCE)
    assert q == hashlib.sha256(b"floodlight-trust/tpm-quote/v1\x00" + NONCE).digest()
    assert q != NONCE and q != host_report_data_for_digest(NONCE, LIST)[:32]


def test_report_data_covers_the_tpm_quote_bytes() -> None:
    attest = b"\xffTCG\x80\x18" + bytes(100)
    rd = host_report_data_with_tpm(NONCE, LIST, attest)
    assert len(rd) == 64 and rd[32:] == bytes(32)
    assert rd[:32] == hashlib.sha256(NONCE + LIST + hashlib.sha256(attest).digest()).digest()
    assert rd != host_report_data_with_tpm(NONCE, LIST, attest[:-1] + b"\x01")  # another TPM quote
    assert rd != host_report_data_for_digest(NONCE, LIST)  # a host without TPM binds differently


def test_bad_lengths_are_input_errors() -> None:
    with pytest.raises(InputError):
        tpm_qualifying_data(NONCE[:31])
    with pytest.raises(InputError):
        host_report_data_with_tpm(NONCE, LIST[:20], b"")
