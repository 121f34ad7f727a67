"""Anchor figures that cannot be re-run on this machine without building the anchor, quoted.

Each constant is quoted from the issue that measured it side by side with floodlight-trust on
this machine (2 cores; the same generated lists; interleaved rounds; medians). The table labels
every figure taken from here as "quoted", so nobody mistakes it for one measured in this run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuotedAnchor:
    what: str
    value: float
    unit: str
    source: str

    def label(self) -> str:
        figure = f"{self.value:,.1f}" if self.value < 100 else f"{self.value:,.0f}"
        return f"{self.what} {figure} {self.unit} [quoted, {self.source}]"


# Issue 15: Keylime 7.14's IMA appraisal (ima-ng ASCII list with sha256 PCR replay, a Keylime
# runtime policy as allowlist), 100,000 entries, median of interleaved rounds.
KEYLIME_IMA_100K_MS = QuotedAnchor("Keylime 7.14", 1623, "ms", "issue 15")
# Issue 15: Keylime's per-entry cost up to 1M entries (15-19 us/entry; the lower bound is quoted).
KEYLIME_IMA_US_PER_ENTRY = QuotedAnchor("Keylime 7.14", 15, "us/entry", "issue 15, 15-19 us")
# Issue 15: peak RSS of a fresh Keylime process appraising 100,000 and 1,000,000 entries.
KEYLIME_RSS_100K_MIB = QuotedAnchor("Keylime 7.14", 151.8, "MiB", "issue 15")
KEYLIME_RSS_1M_MIB = QuotedAnchor("Keylime 7.14", 1100, "MiB", "issue 15")
