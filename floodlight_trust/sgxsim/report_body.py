"""``sgx_report_body_t``: the 384 bytes an enclave report carries, encoded (the inverse of
:func:`floodlight_trust.evidence.sgx_quote.parse_report_body`)."""

from __future__ import annotations

import struct

from floodlight_trust.evidence.sgx_quote import REPORT_BODY_SIZE


def encode_report_body(
    *,
    cpu_svn: bytes = bytes(16),
    misc_select: int = 0,
    isv_ext_prod_id: bytes = bytes(16),
    attributes: bytes = bytes(16),
    mr_enclave: bytes = bytes(32),
    mr_signer: bytes = bytes(32),
    config_id: bytes = bytes(64),
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    config_svn: int = 0,
    isv_family_id: bytes = bytes(16),
    report_data: bytes = bytes(64),
) -> bytes:
    """``sgx_report_body_t`` bytes (384), the inverse of :func:`sgx_quote.parse_report_body`."""
    body = (
        cpu_svn
        + struct.pack("<I", misc_select)
        + bytes(12)
        + isv_ext_prod_id
        + attributes
        + mr_enclave
        + bytes(32)
        + mr_signer
        + bytes(32)
        + config_id
        + struct.pack("<HHH", isv_prod_id, isv_svn, config_svn)
        + bytes(42)
        + isv_family_id
        + report_data
    )
    assert len(body) == REPORT_BODY_SIZE
    return body
