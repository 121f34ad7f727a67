"""The fast path of the binary reader: runs of ``ima-ng`` / ``ima-sig`` (and v2) records.

No Python loop over records: a window of the list is split at the template name (C-level
``split``), every record is taken apart by column (``map`` over slices) assuming the layout of the
first one, and the records are then rebuilt from those parts (``le32(len) | template data | next
header``) and compared with what was read, in one list comparison. Equal means every record is
exactly that layout, so the columns are the record-by-record reader's result; the PCR of every
header is checked with strided slices of the joined headers, which also hold the logged hashes.
Any run that does not fit returns None, and the caller reads it record by record, which yields
the precise error or finding. Nothing here decides validity alone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter, methodcaller

from floodlight_trust.evidence.ima.batch import Batch, Offsets
from floodlight_trust.evidence.ima.templates import DIGEST_SIZES

_U32 = struct.Struct("<I")
_LEN4 = [n.to_bytes(4, "little") for n in range(8192)]  # longer fields are read record by record
_LEN4_NUL = _LEN4[1:]  # the length field of a name of k bytes plus its NUL
_FAST = {b"ima-ng": False, b"ima-ngv2": False, b"ima-sig": True, b"ima-sigv2": True}
_PCR10 = _U32.pack(10)
_decode = bytes.decode
_join = b"".join
_partition_nul = methodcaller("partition", b"\0")


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
    # ``le32(data_len) | template data | next record's pcr and hash``.
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
    steps = list(map(len(marker).__add__, map(len, records[:-1])))
    heads = [parts[0], *map(itemgetter(slice(-hdr, None)), records[:-1])]
    del parts
    # PCR 10 in every header: strided slices of the joined headers, which then hold the hashes.
    logged = b"".join(heads)
    for k in range(4):
        if logged[k::hdr] != _PCR10[k : k + 1] * n:
            return None
    # The d-ng field (``le32(len) "algo:\0" digest``) is read from the first record; every record
    # is then taken apart assuming the same layout and rebuilt from its parts (below), so a record
    # that is not laid out exactly so makes the comparison fail.
    first: bytes = records[0]
    dlen = _U32.unpack_from(first, 4)[0] if len(first) >= 8 else 0
    colon = first.find(b":\0", 8, 8 + min(dlen, 40))
    if colon < 0:
        return None
    prefix = first[8:colon]
    algo = prefix.rpartition(b":")[2].decode("ascii", "replace")
    size = DIGEST_SIZES.get(algo)
    if size is None or dlen != len(prefix) + 2 + size:
        return None
    head = first[4 : 8 + dlen - size]  # le32(len) "algo:\0"
    d_at = 8 + dlen - size  # the digest, from the start of a record part (after le32(data_len))
    p_at = 8 + dlen + 4  # the file name
    records[-1] += bytes(hdr)  # a stand-in for the next header, so that every part has the same shape
    heads.append(bytes(hdr))
    del heads[0]
    digests = list(map(itemgetter(slice(d_at, d_at + size)), records))
    paths: Sequence[bytes]
    if has_sig:
        rest = map(_partition_nul, map(itemgetter(slice(p_at, -hdr)), records))
        paths, nuls, sig_fields = zip(*rest, strict=True)
        if nuls.count(b"\0") != n:
            return None
        sigs = list(map(itemgetter(slice(4, None)), sig_fields))
        sig_lens = list(map(_LEN4.__getitem__, map(len, sigs)))
        name_lens = list(map(_LEN4_NUL.__getitem__, map(len, paths)))
        tds = list(map(_join, zip(repeat(head), digests, name_lens, paths, repeat(b"\0"), sig_lens, sigs)))
    else:
        paths = list(map(itemgetter(slice(p_at, -hdr - 1)), records))
        name_lens = list(map(_LEN4_NUL.__getitem__, map(len, paths)))
        tds = list(map(_join, zip(repeat(head), digests, name_lens, paths, repeat(b"\0"))))
        sigs = [b""] * n
    if b"\0" in b"".join(paths):  # a name with a NUL in it: the record-by-record reader says what it is
        return None
    rebuilt = list(map(_join, zip(map(_LEN4.__getitem__, map(len, tds)), tds, heads, strict=True)))
    if rebuilt != records:
        return None
    del rebuilt, records, heads
    try:
        path_text = list(map(_decode, paths))
    except UnicodeDecodeError:
        path_text = [x.decode("utf-8", "backslashreplace") for x in paths]
    batch = Batch(first_index=index)
    batch.positions = Offsets(base + pos, steps)
    batch.pcrs = [10] * n
    batch.hashes = logged
    batch.hash_prefix = _PCR10
    batch.templates = [name.decode("ascii")] * n
    batch.inputs = tds
    batch.paths = path_text
    batch.algos = [algo] * n
    batch.digests = list(map(bytes.hex, digests))
    batch.sigs = sigs
    batch.end = base + boundary
    return batch
