"""The binary measurement list (``binary_runtime_measurements[_<bank>]``): reader and writer.

Record layout (little-endian): ``pcr u32 | template hash [bank size] | name_len u32 | name |
data_len u32 | template data``, except the old ``ima`` template: ``pcr | hash | name_len | "ima" |
sha1 digest [20] | file name length u32 | file name`` (no data length, no NUL).
The template-hash size is the bank of the file (20 for the classic list, 32 for ``_sha256``...);
the reader finds it from the first record.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator

from floodlight_trust.errors import Location, ParseError
from floodlight_trust.evidence.ima.batch import Batch
from floodlight_trust.evidence.ima.binary_fast import fast_chunk
from floodlight_trust.evidence.ima.templates import (
    BANK_BY_SIZE,
    DIGEST_SIZES,
    MAX_TEMPLATE_NAME,
    ImaRecord,
    describe,
    hash_input,
    pack_template_data,
    template_fields,
    template_hash,
    unpack_template_data,
)

CHUNK = 4096
MAX_TEMPLATE_DATA = 1 << 24  # larger lengths are corrupt, not a record cut short
_U32 = struct.Struct("<I")
_ASCII_START = re.compile(rb" *[0-9]{1,10} [0-9a-fA-F]")
_HEADERS = {size: struct.Struct(f"<I{size}sI") for size in BANK_BY_SIZE}


def _err(message: str, offset: int, index: int, hint: str | None = None) -> ParseError:
    return ParseError(message, location=Location(offset=offset, index=index), hint=hint)


def detect_hash_size(data: bytes) -> int | None:
    """The template-hash size of a binary list, from its first record (None if not recognisable)."""
    for size in (20, 32, 48, 64):
        if len(data) < 4 + size + 4:
            continue
        n = _U32.unpack_from(data, 4 + size)[0]
        if 0 < n <= MAX_TEMPLATE_NAME and len(data) >= 8 + size + n:
            name = data[8 + size : 8 + size + n]
            if template_fields(name.decode("ascii", "replace")) is not None:
                return size
    return None


def looks_binary(data: bytes) -> bool:
    """ASCII lists start with a PCR number in decimal; binary ones with a little-endian u32."""
    return bool(data) and _ASCII_START.match(data) is None


def parse_binary(
    data: bytes, *, hash_size: int, base: int = 0, first_index: int = 0, start: int = 0
) -> Iterator[Batch]:
    """Read binary records of ``data[start:]`` chunk by chunk (offsets reported relative to ``base``).

    A record cut short at the end of the data is a partial trailing record, reported on the last
    batch and not consumed; a length that cannot be right (a template name over 128 bytes, a field
    past the end of its template data) or an unknown template raises ParseError (offset, index).
    """
    end = len(data)
    pos, index = start, first_index
    names: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    while pos < end:
        batch = fast_chunk(data, pos, hash_size, index, base, CHUNK)
        if batch is None:
            batch = _slow_chunk(data, pos, hash_size, index, base, names)
        pos = batch.end - base
        index += len(batch)
        yield batch
        if batch.partial:
            return


def _slow_chunk(
    data: bytes, pos: int, hash_size: int, index: int, base: int, names: dict[bytes, tuple[str, tuple[str, ...]]]
) -> Batch:
    """Up to CHUNK records read one by one, with exact errors and partial-record findings."""
    header = _HEADERS[hash_size]
    hsize = header.size
    end = len(data)
    batch = Batch(first_index=index)
    positions: list[int] = []
    batch.positions = positions
    pcrs, templates, inputs = batch.pcrs, batch.templates, batch.inputs
    hashes: list[bytes] = []
    paths, algos, digests, sigs = batch.paths, batch.algos, batch.digests, batch.sigs
    count = 0
    while pos < end and count < CHUNK:
        if end - pos < hsize:
            batch.partial = f"record header needs {hsize} bytes, {end - pos} remain"
            batch.partial_position = base + pos
            break
        pcr, th, nlen = header.unpack_from(data, pos)
        p = pos + hsize
        if nlen == 0 or nlen > MAX_TEMPLATE_NAME:
            raise _err(f"template name length {nlen} is not plausible (1..{MAX_TEMPLATE_NAME})", base + p - 4, index)
        if p + nlen > end:
            batch.partial = f"template name needs {nlen} bytes, {end - p} remain"
            batch.partial_position = base + pos
            break
        name_b = data[p : p + nlen]
        p += nlen
        known = names.get(name_b)
        if known is None:
            name = name_b.decode("ascii", "replace")
            ids = template_fields(name)
            if ids is None:
                raise _err(f"unknown template {name!r}", base + p - nlen, index)
            known = names[name_b] = (name, ids)
        name, ids = known
        if name == "ima":
            if end - p < 24:
                batch.partial = f"ima record needs {24} more bytes, {end - p} remain"
                batch.partial_position = base + pos
                break
            flen = _U32.unpack_from(data, p + 20)[0]
            if flen > 4096:
                raise _err(f"file name length {flen} is not plausible", base + p + 20, index)
            if p + 24 + flen > end:
                batch.partial = f"file name needs {flen} bytes, {end - p - 24} remain"
                batch.partial_position = base + pos
                break
            fields: tuple[bytes, ...] = (data[p : p + 20], data[p + 24 : p + 24 + flen] + b"\0")
            p += 24 + flen
            inp = hash_input("ima", fields)
        else:
            if end - p < 4:
                batch.partial = f"template data length needs 4 bytes, {end - p} remain"
                batch.partial_position = base + pos
                break
            tdlen = _U32.unpack_from(data, p)[0]
            p += 4
            if tdlen > MAX_TEMPLATE_DATA:
                raise _err(
                    f"template data length {tdlen} points past the end of the data ({end - p} bytes remain)",
                    base + p - 4,
                    index,
                )
            if p + tdlen > end:
                batch.partial = f"template data needs {tdlen} bytes, {end - p} remain"
                batch.partial_position = base + pos
                break
            inp = data[p : p + tdlen]
            try:
                fields = unpack_template_data(inp, len(ids))
            except ValueError as e:
                raise _err(f"template {name}: {e.args[0]}", base + p + e.args[1], index) from None
            p += tdlen
        d = describe(ids, fields)
        positions.append(base + pos)
        pcrs.append(pcr)
        hashes.append(th)
        templates.append(name)
        inputs.append(inp)
        paths.append(d.path)
        algos.append(d.digest_algorithm)
        digests.append(d.digest)
        sigs.append(d.signature)
        if d.other_signature:
            batch.other_sigs.append(count)
        pos = p
        index += 1
        count += 1
    batch.end = base + pos
    batch.hashes = b"".join(hashes)
    return batch


# ---------------------------------------------------------------------------------------------
# Writer


def serialize_record(entry: ImaRecord, bank: str = "sha1") -> bytes:
    if bank not in DIGEST_SIZES:
        raise ValueError(f"unknown bank {bank!r}")
    name = entry.template.encode("ascii")
    head = _U32.pack(entry.pcr) + template_hash(entry, bank) + _U32.pack(len(name)) + name
    if entry.template == "ima":
        digest, fname = entry.fields[0], entry.fields[1].rstrip(b"\0")
        return head + digest + _U32.pack(len(fname)) + fname
    td = pack_template_data(entry.fields)
    return head + _U32.pack(len(td)) + td


def serialize_binary(entries: Iterable[ImaRecord], bank: str = "sha1") -> bytes:
    """A binary measurement list of ``entries`` with template hashes in ``bank``."""
    return b"".join(serialize_record(e, bank) for e in entries)


def records_from_binary(data: bytes, hash_size: int) -> list[ImaRecord]:
    """Every complete record of a binary list as :class:`ImaRecord` (for tests and tools, not hot paths)."""
    out: list[ImaRecord] = []
    for batch in parse_binary(data, hash_size=hash_size):
        logged = batch.logged(hash_size)
        for i in range(len(batch)):
            name = batch.templates[i]
            ids = template_fields(name)
            assert ids is not None
            if name == "ima":
                inp = batch.inputs[i]
                fields: tuple[bytes, ...] = (inp[:20], inp[20:].rstrip(b"\0") + b"\0")
            else:
                fields = unpack_template_data(batch.inputs[i], len(ids))
            out.append(ImaRecord(batch.pcrs[i], name, fields, violation=not any(logged[i])))
    return out
