"""A run of parsed entries in columns: what the two readers hand to the appraisal, chunk by chunk.

Columns, not objects per entry: the readers fill plain lists, the appraisal hashes them with
``map`` and moves the policy-facing columns into the claims without copying rows. The logged
template hashes are one bytes object (``hash_size`` bytes per entry, each maybe after a constant
prefix), so checking a whole batch
is one comparison with the computed ones laid out the same way (``bulkhash.digests``); the readers guarantee every entry's hash has the list's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate


@dataclass(slots=True)
class Batch:
    first_index: int  # index of the first entry in the whole list
    positions: Sequence[int] = field(default_factory=list)  # line number (ASCII) or byte offset (binary)
    pcrs: list[int] = field(default_factory=list)
    hashes: bytes = b""  # the logged template hashes, each preceded by hash_prefix, concatenated
    hash_prefix: bytes = b""  # constant bytes before each hash in `hashes` (a fast reader's layout)
    templates: list[str] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)  # what the template hash covers
    paths: list[str] = field(default_factory=list)
    algos: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    sigs: list[bytes] = field(default_factory=list)  # the `sig` field, b"" if none
    other_sigs: list[int] = field(default_factory=list)  # positions in this batch with a modsig/evmsig
    end: int = 0  # byte offset just after the last entry of this batch
    partial: str | None = None  # a partial trailing record: what is missing
    partial_position: int | None = None  # its line or offset

    def __len__(self) -> int:
        return len(self.pcrs)

    def logged(self, hash_size: int) -> list[bytes]:
        """The logged template hashes, one item per entry."""
        h, skip = self.hashes, len(self.hash_prefix)
        return [h[i + skip : i + skip + hash_size] for i in range(0, len(h), skip + hash_size)]


class Offsets(Sequence[int]):
    """Byte offsets of consecutive records from the first one's and the distances between them,
    added up only if asked for (they locate findings, which are rare)."""

    __slots__ = ("_first", "_steps", "_values")

    def __init__(self, first: int, steps: list[int]):
        self._first, self._steps = first, steps
        self._values: list[int] | None = None

    def __len__(self) -> int:
        return len(self._steps) + 1

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if self._values is None:
            self._values = list(accumulate(self._steps, initial=self._first))
        return self._values[i]
