"""The fast path of the binary reader: runs of ``ima-ng`` / ``ima-sig`` (and v2) records.

A Python loop only follows the length fields to find where records start; everything else
(header checks, slicing, field layout checks) is done per column with ``map`` over C-level
functions. Any run that is not exactly the expected layout returns None, and the caller reads it
record by record, which yields the precise error or finding. Nothing here decides validity alone.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import accumulate, repeat
from operator import getitem as _getitem
from operator import itemgetter
from typing import Any

from floodlight_trust.evidence.ima.batch import Batch
from floodlight_trust.evidence.ima.templates import DIGEST_SIZES

_U32 = struct.Struct("<I")
_LEN4 = [n.to_bytes(4, "little") for n in range(4200)]
_FAST = {b"ima-ng": False, b"ima-ngv2": False, b"ima-sig": True, b"ima-sigv2": True}
_PCR10 = _U32.pack(10)
_decode = bytes.decode
getitem: Callable[[Any, Any], Any] = _getitem  # typed loosely: bytes[slice] and bytes[int] both occur
_from_bytes: Callable[..., int] = int.from_bytes


def fast_chunk(data: bytes, pos: int, hash_size: int, index: int, base: int, limit: int) -> Batch | None:
    """Up to ``limit`` records of one common template starting at ``pos``, or None."""
    try:
        return _fast_chunk(data, pos, hash_size, index, base, limit)
    except (IndexError, ValueError):  # a length that does not fit: the record-by-record reader explains
        return None


def _fast_chunk(data: bytes, pos: int, hash_size: int, index: int, base: int, limit: int) -> Batch | None:
    end = len(data)
    name_at = pos + 4 + hash_size
    if end - name_at < 16:
        return None
    nlen = _U32.unpack_from(data, name_at)[0]
    name = data[name_at + 4 : name_at + 4 + nlen]
    has_sig = _FAST.get(name)
    if has_sig is None:
        return None
    # Split a window of the list at the template name: every part after the first is
    # ``le32(data_len) | template data | next record's pcr and hash``. The lengths are then checked
    # to chain exactly, which proves the split found record boundaries and nothing inside data.
    marker = _LEN4[nlen] + name
    hdr = 4 + hash_size
    window_end = pos + limit * 128
    boundary = end
    if window_end < end:
        at = data.find(marker, window_end)
        if at >= 0:
            boundary = at - hdr
    if boundary <= pos:
        return None
    parts = data[pos:boundary].split(marker)
    if len(parts) < 2 or len(parts[0]) != hdr:
        return None
    records = parts[1:]
    n = len(records)
    lens = list(map(len, records))
    expected = [k + 4 + hdr for k in map(_from_bytes, map(itemgetter(slice(0, 4)), records), repeat("little"))]
    expected[-1] -= hdr
    if lens != expected:
        return None
    heads = [parts[0], *map(itemgetter(slice(-hdr, None)), records[:-1])]
    if list(map(itemgetter(slice(0, 4)), heads)).count(_PCR10) != n:
        return None
    hashes = list(map(itemgetter(slice(4, None)), heads))
    tds = list(map(itemgetter(slice(4, -hdr)), records[:-1]))
    tds.append(records[-1][4:])
    del parts, records, heads
    starts = list(accumulate(map(len(marker).__add__, lens[:-1]), initial=pos))
    p = boundary
    # d-ng field: le32(len) "algo:\0" digest, the same algorithm throughout the run.
    first: bytes = tds[0]
    dlen = _U32.unpack_from(first, 0)[0] if len(first) >= 4 else 0
    colon = first.find(b":\0", 4, 4 + min(dlen, 40))
    if colon < 0:
        return None
    prefix = first[4:colon]
    algo = prefix.rpartition(b":")[2].decode("ascii", "replace")
    size = DIGEST_SIZES.get(algo)
    if size is None or dlen != len(prefix) + 2 + size:
        return None
    head = first[: 4 + dlen - size]
    dend = 4 + dlen
    if min(map(len, tds)) < dend + 5 or list(map(itemgetter(slice(0, dend - size)), tds)).count(head) != n:
        return None
    digests = list(map(itemgetter(slice(dend - size, dend)), tds))
    name_lens = list(map(_from_bytes, map(itemgetter(slice(dend, dend + 4)), tds), repeat("little")))
    path_end = [dend + 4 + k for k in name_lens]  # just past the NUL of the file name
    if has_sig:
        if min(map(len, tds)) < dend + 8 + min(name_lens):
            return None
        ends = [e - 1 for e in path_end]
        nuls = list(map(getitem, tds, ends))
        sig_lens = list(map(getitem, tds, map(slice, path_end, [e + 4 for e in path_end])))
        sigs = list(map(getitem, tds, map(slice, [e + 4 for e in path_end], repeat(None))))
        if sig_lens != [_LEN4[k] if k < 4200 else k.to_bytes(4, "little") for k in map(len, sigs)]:
            return None
    else:
        if path_end != list(map(len, tds)):
            return None
        ends = [e - 1 for e in path_end]
        nuls = list(map(getitem, tds, ends))
        sigs = [b""] * n
    if nuls.count(0) != n or min(name_lens) < 1:
        return None
    paths = list(map(getitem, tds, map(slice, repeat(dend + 4), ends)))
    try:
        path_text = list(map(_decode, paths))
    except UnicodeDecodeError:
        path_text = [x.decode("utf-8", "backslashreplace") for x in paths]
    batch = Batch(first_index=index)
    batch.positions = [base + s for s in starts] if base else starts
    batch.pcrs = [10] * n
    batch.hashes = b"".join(hashes)
    batch.templates = [name.decode("ascii")] * n
    batch.inputs = tds
    batch.paths = path_text
    batch.algos = [algo] * n
    batch.digests = list(map(bytes.hex, digests))
    batch.sigs = sigs
    batch.end = base + p
    return batch
