"""Linux IMA measurement lists: parse (ASCII and binary), check template hashes, replay PCR 10,
verify file signatures, appraise incrementally, and write lists (for tests and the simulated host).

The public API is :func:`appraise_measurement_list` with :class:`ImaState`, :class:`ImaAppraisal`
and :class:`ImaFinding`; the writers are :func:`make_entry`, :func:`format_ascii_line`,
:func:`serialize_ascii` and :func:`serialize_binary`.
"""

from typing import TYPE_CHECKING, Any

from floodlight_trust.evidence.ima.appraise import (
    FindingKind,
    ImaAppraisal,
    ImaFinding,
    ImaPrefixChanged,
    ImaState,
    ListBytes,
    appraise_measurement_list,
)
from floodlight_trust.evidence.ima.ascii import format_ascii_line, parse_line, serialize_ascii
from floodlight_trust.evidence.ima.binary import records_from_binary, serialize_binary
from floodlight_trust.evidence.ima.templates import ImaRecord, make_entry, template_hash

# The signature module brings cryptography: imported when first asked for (a list without signatures,
# in a fresh `ftrust policy eval --ima-log` process, never needs it).
if TYPE_CHECKING:
    from floodlight_trust.evidence.ima.signatures import key_ids, parse_signature


def __getattr__(name: str) -> Any:
    if name in ("key_ids", "parse_signature"):
        from floodlight_trust.evidence.ima import signatures

        return getattr(signatures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FindingKind",
    "ImaAppraisal",
    "ImaFinding",
    "ImaPrefixChanged",
    "ImaRecord",
    "ImaState",
    "ListBytes",
    "appraise_measurement_list",
    "format_ascii_line",
    "key_ids",
    "make_entry",
    "parse_line",
    "parse_signature",
    "records_from_binary",
    "serialize_ascii",
    "serialize_binary",
    "template_hash",
]
