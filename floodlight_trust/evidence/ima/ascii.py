"""The ASCII measurement list (``ascii_runtime_measurements[_<bank>]``): reader and writer.

A line is ``PCR TEMPLATE-HASH TEMPLATE FIELD...`` with one space before every field (an empty
field leaves two spaces or a trailing one) and a newline at the end of every record. The reader
rebuilds the exact template data from the shown fields so template hashes can be checked.

Lines of the common templates (ima-ng, ima-sig and their v2 forms) are read a chunk at a time
with ``map`` over C-level bytes methods; any chunk that does not fit that shape, or has any
defect, is re-read line by line, which gives the precise error or finding.
"""

from __future__ import annotations

from binascii import Error as HexError
from binascii import unhexlify
from collections.abc import Iterable, Iterator
from operator import methodcaller

from floodlight_trust.errors import Location, ParseError
from floodlight_trust.evidence.ima.batch import Batch
from floodlight_trust.evidence.ima.templates import (
    BANK_BY_SIZE,
    DIGEST,
    DIGEST_ALGO,
    DIGEST_SIZES,
    FIELD_KINDS,
    HEX,
    STRING,
    UINT,
    UINT_WIDTHS,
    ImaRecord,
    describe,
    hash_input,
    template_fields,
    template_hash,
)

CHUNK = 4096
_LEN4 = [n.to_bytes(4, "little") for n in range(4097)]
_FAST = {"ima-ng": False, "ima-ngv2": False, "ima-sig": True, "ima-sigv2": True}  # -> has a sig field
_split3 = methodcaller("split", b" ", 3)
_part_space = methodcaller("partition", b" ")
_rpart_space = methodcaller("rpartition", b" ")
_rpart_colon = methodcaller("rpartition", b":")
_decode_path = methodcaller("decode", "utf-8", "backslashreplace")


def _err(message: str, line: int, index: int, column: int | None = None, hint: str | None = None) -> ParseError:
    return ParseError(message, location=Location(line=line, column=column, index=index), hint=hint)


def _field_from_text(fid: str, text: bytes, line: int, index: int) -> bytes:
    kind = FIELD_KINDS[fid]
    try:
        if kind == STRING:
            return text + b"\0" if (text or fid != "xattrnames") else b""
        if not text:
            return b""
        if kind == HEX:
            return unhexlify(text)
        if kind == DIGEST:
            return unhexlify(text)
        if kind == DIGEST_ALGO:
            prefix, colon, hexpart = text.rpartition(b":")
            digest = unhexlify(hexpart)
            if not colon:
                return digest  # legacy d-ng without an algorithm prefix
            algo = prefix.rpartition(b":")[2].decode("ascii", "replace")
            size = DIGEST_SIZES.get(algo)
            if size is not None and size != len(digest):
                raise _err(
                    f"{fid} digest {text.decode('ascii', 'replace')!r}: a {algo} digest has {size} bytes, "
                    f"got {len(digest)}",
                    line,
                    index,
                )
            return prefix + b":\0" + digest
        if kind == UINT:
            return int(text).to_bytes(UINT_WIDTHS.get(fid, 4), "little")
    except (HexError, ValueError, OverflowError):
        shown = text.decode("ascii", "replace")
        what = "an integer" if kind == UINT else "hex digits"
        raise _err(f"field {fid} is {shown[:80]!r}, expected {what}", line, index) from None
    raise AssertionError(kind)


def parse_line(line: bytes, number: int = 1, index: int = 0) -> tuple[ImaRecord, bytes]:
    """One ASCII record (without its newline) -> the record and its logged template hash."""
    tokens = line.split(b" ")
    while tokens and tokens[0] == b"":  # the kernel prints the PCR as %2d
        del tokens[0]
    if len(tokens) < 3:
        raise _err(
            f"line has {len(tokens)} field(s), expected at least PCR, template hash and template name",
            number,
            index,
        )
    pcr_text, hash_text, name_b, values = tokens[0], tokens[1], tokens[2], tokens[3:]
    if not pcr_text.isdigit():
        raise _err(f"PCR {pcr_text.decode('ascii', 'replace')!r} is not a number", number, index, 1)
    name = name_b.decode("ascii", "replace")
    ids = template_fields(name)
    if ids is None:
        raise _err(
            f"unknown template {name!r}",
            number,
            index,
            hint="known: ima, ima-ng, ima-sig, ima-ngv2, ima-sigv2, ima-buf, ima-modsig, evm-sig, or d-ng|n-ng|...",
        )
    if len(values) < len(ids):
        raise _err(
            f"template {name} has {len(ids)} fields ({'|'.join(ids)}), the line has {len(values)}", number, index
        )
    if len(values) > len(ids):
        # Only a file name can contain spaces: it takes the extra tokens.
        k = next((i for i, f in enumerate(ids) if FIELD_KINDS[f] == STRING), None)
        if k is None:
            raise _err(f"template {name} has {len(ids)} fields, the line has {len(values)}", number, index)
        extra = len(values) - len(ids)
        values = [*values[:k], b" ".join(values[k : k + extra + 1]), *values[k + extra + 1 :]]
    logged = _hash_bytes(hash_text, number, index)
    fields = tuple(_field_from_text(f, v, number, index) for f, v in zip(ids, values, strict=True))
    return ImaRecord(int(pcr_text), name, fields, violation=not any(logged)), logged


def _hash_bytes(text: bytes, number: int, index: int) -> bytes:
    try:
        digest = unhexlify(text)
    except (HexError, ValueError):
        raise _err(
            f"template hash {text.decode('ascii', 'replace')[:80]!r} is not hex", number, index, hint=None
        ) from None
    if len(digest) not in BANK_BY_SIZE:
        raise _err(f"template hash has {len(digest)} bytes, expected 20, 32, 48 or 64", number, index)
    return digest


def _slow(batch: Batch, lines: list[bytes], first_line: int, offsets: list[int]) -> None:
    for i, line in enumerate(lines):
        number, index = first_line + i, batch.first_index + i
        if not line:
            raise _err("empty line, expected a measurement record", number, index)
        rec, logged = parse_line(line, number, index)
        ids = template_fields(rec.template)
        assert ids is not None
        d = describe(ids, rec.fields)
        batch.positions.append(number)
        batch.pcrs.append(rec.pcr)
        batch.hashes.append(logged)
        batch.templates.append(rec.template)
        batch.inputs.append(hash_input(rec.template, rec.fields))
        batch.paths.append(d.path)
        batch.algos.append(d.digest_algorithm)
        batch.digests.append(d.digest)
        batch.sigs.append(d.signature)
        if d.other_signature:
            batch.other_sigs.append(i)
        batch.end = offsets[i]


def _fast(batch: Batch, lines: list[bytes], first_line: int) -> bool:
    """Fill ``batch`` from a chunk of one common template; False if the chunk needs the slow path."""
    try:
        split = list(map(_split3, lines))
        pcrs, hashes_hex, names, rests = zip(*split, strict=True)
    except ValueError:  # a line with fewer than 4 tokens
        return False
    name = names[0].decode("ascii", "replace")
    has_sig = _FAST.get(name)
    if has_sig is None or names.count(names[0]) != len(names) or pcrs.count(b"10") != len(pcrs):
        return False
    try:
        dngs, _, tails = zip(*map(_part_space, rests), strict=True)
        if has_sig:
            paths, _, sig_hex = zip(*map(_rpart_space, tails), strict=True)
            sigs = list(map(unhexlify, sig_hex))
        else:
            paths, sigs = tails, [b""] * len(tails)
        prefixes, colons, digest_hex = zip(*map(_rpart_colon, dngs), strict=True)
        hashes = list(map(unhexlify, hashes_hex))
        digests = list(map(unhexlify, digest_hex))
    except (HexError, ValueError):
        return False
    prefix = prefixes[0]
    algo = prefix.rpartition(b":")[2].decode("ascii", "replace")
    size = DIGEST_SIZES.get(algo)
    if (
        size is None
        or prefixes.count(prefix) != len(prefixes)
        or b"" in colons
        or {len(d) for d in digests} != {size}
        or len({len(h) for h in hashes}) != 1
        or len(hashes[0]) not in BANK_BY_SIZE
        or b"" in paths
    ):
        return False
    head = _LEN4[len(prefix) + 2 + size] + prefix + b":\0"
    try:
        name_lens = [_LEN4[n + 1] for n in map(len, paths)]
    except IndexError:  # a path longer than PATH_MAX: let the slow path handle it
        return False
    if has_sig:
        fmt = head.replace(b"%", b"%%") + b"%b%b%b\0%b%b"
        sig_lens = [_LEN4[n] if n < 4097 else n.to_bytes(4, "little") for n in map(len, sigs)]
        inputs = list(map(fmt.__mod__, zip(digests, name_lens, paths, sig_lens, sigs, strict=True)))
    else:
        fmt = head.replace(b"%", b"%%") + b"%b%b%b\0"
        inputs = list(map(fmt.__mod__, zip(digests, name_lens, paths, strict=True)))
    n = len(lines)
    batch.positions.extend(range(first_line, first_line + n))
    batch.pcrs.extend([10] * n)
    batch.hashes.extend(hashes)
    batch.templates.extend([name] * n)
    batch.inputs.extend(inputs)
    batch.paths.extend(map(_decode_path, paths))
    batch.algos.extend([algo] * n)
    batch.digests.extend(map(bytes.hex, digests))
    batch.sigs.extend(sigs)
    return True


def parse_ascii(data: bytes, *, base: int = 0, first_index: int = 0, first_line: int = 1) -> Iterator[Batch]:
    """Read ASCII records from ``data`` (which starts at byte ``base`` of the list), chunk by chunk.

    Every complete line is a record; an unterminated last line is a partial trailing record,
    reported on the last batch and not consumed. Raises ParseError (line, entry index) on the
    first malformed record.
    """
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when data ends with a newline
    pos, line_no, index = base, first_line, first_index
    for start in range(0, len(lines), CHUNK):
        chunk = lines[start : start + CHUNK]
        batch = Batch(first_index=index)
        size = sum(map(len, chunk)) + len(chunk)
        if not _fast(batch, chunk, line_no):
            batch = Batch(first_index=index)
            offsets: list[int] = []
            p = pos
            for line in chunk:
                p += len(line) + 1
                offsets.append(p)
            _slow(batch, chunk, line_no, offsets)
        pos += size
        batch.end = pos
        line_no += len(chunk)
        index += len(chunk)
        yield batch
    if tail:
        batch = Batch(first_index=index, end=pos)
        batch.partial = f"last line ({len(tail)} bytes) has no newline: a partial record, not appraised"
        batch.partial_position = line_no
        yield batch


# ---------------------------------------------------------------------------------------------
# Writer


def _field_text(fid: str, data: bytes) -> str:
    if not data:
        return ""
    kind = FIELD_KINDS[fid]
    if kind == STRING:
        return data.rstrip(b"\0").decode("utf-8", "backslashreplace")
    if kind == DIGEST_ALGO:
        nul = data.find(b"\0", 0, 40)
        if nul > 0 and data[nul - 1 : nul] == b":":
            return data[:nul].decode("ascii") + data[nul + 1 :].hex()
        return data.hex()
    if kind == UINT:
        return str(int.from_bytes(data, "little"))
    return data.hex()


def format_ascii_line(entry: ImaRecord, bank: str = "sha1") -> str:
    """The line (with its newline) ``ascii_runtime_measurements`` shows for ``entry`` in ``bank``."""
    ids = template_fields(entry.template)
    if ids is None:
        raise ValueError(f"unknown IMA template {entry.template!r}")
    fields = " ".join(_field_text(f, d) for f, d in zip(ids, entry.fields, strict=True))
    return f"{entry.pcr:2d} {template_hash(entry, bank).hex()} {entry.template} {fields}\n"


def serialize_ascii(entries: Iterable[ImaRecord], bank: str = "sha1") -> bytes:
    """An ASCII measurement list of ``entries`` with template hashes in ``bank``."""
    return "".join(format_ascii_line(e, bank) for e in entries).encode("utf-8")
