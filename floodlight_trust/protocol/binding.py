"""What a quote's REPORTDATA must contain, so that evidence is fresh and bound to what it claims.

Host evidence: REPORTDATA = SHA-256(nonce || SHA-256(the exact IMA list bytes sent)) || 32 zero bytes.
Host evidence anchored in the TPM: the TPM quote's qualifying data (extraData) is
SHA-256("floodlight-trust/tpm-quote/v1" 0x00 || nonce), and REPORTDATA =
SHA-256(nonce || SHA-256(IMA list) || SHA-256(TPMS_ATTEST of that quote)) || 32 zero bytes, so the
SGX quote covers the TPM quote: both come from one attestation of one host, for this nonce.
Enclave evidence: REPORTDATA = SHA-256(nonce || SHA-256(SubjectPublicKeyInfo DER)) || 32 zero bytes.

Both sides (the agent building a quote, the VM checking one) call these functions, so the two can
never disagree on the layout. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import hmac

from floodlight_trust.errors import InputError, VerificationError

NONCE_BYTES = 32
REPORT_DATA_BYTES = 64


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise InputError(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")


def _pad(digest: bytes) -> bytes:
    return digest + b"\x00" * (REPORT_DATA_BYTES - len(digest))


def host_report_data(nonce: bytes, ima_list: bytes) -> bytes:
    """REPORTDATA binding a nonce and the exact IMA measurement list bytes (64 bytes)."""
    return host_report_data_for_digest(nonce, hashlib.sha256(ima_list).digest())


def host_report_data_for_digest(nonce: bytes, ima_list_sha256: bytes) -> bytes:
    """:func:`host_report_data` from the list's SHA-256 (the VM extends a running hash by the tail)."""
    _check_nonce(nonce)
    if len(ima_list_sha256) != 32:
        raise InputError("the IMA list digest must be a SHA-256 (32 bytes)")
    return _pad(hashlib.sha256(nonce + ima_list_sha256).digest())


TPM_QUOTE_LABEL = b"floodlight-trust/tpm-quote/v1\x00"


def tpm_qualifying_data(nonce: bytes) -> bytes:
    """The TPM quote's extraData for the VM's ``nonce`` (32 bytes, domain-separated from REPORTDATA)."""
    _check_nonce(nonce)
    return hashlib.sha256(TPM_QUOTE_LABEL + nonce).digest()


def host_report_data_with_tpm(nonce: bytes, ima_list_sha256: bytes, tpm_attest: bytes) -> bytes:
    """REPORTDATA binding the nonce, the IMA list and the exact TPMS_ATTEST bytes of the TPM quote."""
    _check_nonce(nonce)
    if len(ima_list_sha256) != 32:
        raise InputError("the IMA list digest must be a SHA-256 (32 bytes)")
    return _pad(hashlib.sha256(nonce + ima_list_sha256 + hashlib.sha256(tpm_attest).digest()).digest())


def key_report_data(nonce: bytes, spki_der: bytes) -> bytes:
    """REPORTDATA binding a nonce and an enclave public key's SubjectPublicKeyInfo DER (64 bytes)."""
    _check_nonce(nonce)
    return _pad(hashlib.sha256(nonce + hashlib.sha256(spki_der).digest()).digest())


def check_report_data(expected: bytes, report_data_hex: str, *, what: str) -> None:
    """Raise VerificationError unless the quote's REPORTDATA equals ``expected`` (constant time)."""
    try:
        actual = bytes.fromhex(report_data_hex)
    except ValueError:
        raise VerificationError(f"{what}: REPORTDATA is not hex") from None
    if not hmac.compare_digest(actual, expected):
        raise VerificationError(
            f"{what}: REPORTDATA {actual[:32].hex()} does not bind the nonce and the data sent "
            f"(expected {expected[:32].hex()})",
            hint="the quote was made for another nonce, another key or another IMA list",
        )
