"""The CA's certificate records: the typed record, serials as the CLI shows them, revocation reasons.

Records live in the deployment's storage (:class:`~floodlight_trust.storage.stores.CertificateStore`,
one per CA: ``storage.certificates(CertificateAuthorityKind.VNF)`` or ``...ADMIN``). Serials are
159-bit integers, stored as lowercase hex text. Every write can run inside the caller's transaction
(``tx.certificates(kind)``) so the Verification Manager can issue a certificate and record its
enrollment in one transaction: a crash leaves both or neither.
"""

from __future__ import annotations

from floodlight_trust.errors import InputError
from floodlight_trust.storage.records import (
    REVOCATION_REASONS,
    CertificateAuthorityKind,
    CertificateRecord,
    CertificateStatus,
    normalize_reason,
)

__all__ = [
    "REASONS",
    "CertificateAuthorityKind",
    "CertificateRecord",
    "CertificateStatus",
    "normalize_reason",
    "parse_serial",
    "serial_hex",
]

REASONS = REVOCATION_REASONS  # RFC 5280 CRLReason names accepted for revocation


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """A serial as ``ftrust ca list`` prints it: hex, optionally with ``0x`` or colons."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise InputError(f"serial {text!r} is not a hexadecimal number", hint="copy it from `ftrust ca list`") from None
    if value <= 0:
        raise InputError(f"serial {text!r} must be positive")
    return value
