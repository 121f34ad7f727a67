"""The ASCII measurement list (``ascii_runtime_measurements[_<bank>]``): reader and writer.

A line is ``PCR TEMPLATE-HASH TEMPLATE FIELD...`` with one space before every field (an empty
field leaves two spaces or a trailing one) and a newline at the end of every record. The reader
rebuilds the exact template data from the shown fields so template hashes can be checked.

Lines of the common templates (ima-ng, ima-sig and their v2 forms) are read a chunk at a time
with ``map`` over C-level bytes methods, and each column is checked whole (see ``_fast``); any
chunk that does not fit that shape, or has any defect, is re-read line by line, which gives the
precise error or finding.
"""

from __future__ import annotations

from binascii import Error as HexError
from binascii import unhexlify
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import itemgetter, methodcaller

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
_LEN4 = [n.to_bytes(4, "little") for n in range(8192)]
_LEN4_NUL = _LEN4[1:]  # the length field of a name of k bytes plus its NUL
_FAST = {"ima-ng": False, "ima-ngv2": False, "ima-sig": True, "ima-sigv2": True}  # -> has a sig field
_HEX = b"0123456789abcdef"
_rpart_space = methodcaller("rpartition", b" ")
_decode = bytes.decode
_join = b"".join
_decode_path = methodcaller("decode", "utf-8", "backslashreplace")

_NgColumns = Callable[[list[bytes], int, int, int, bytes], tuple[bytes, list[bytes], list[str], list[str]] | None]
_ng_columns: _NgColumns | None
try:  # the ima-ng columns in C (bulkhash.py's native module); else the map-based reader below
    from floodlight_trust.evidence.ima._bulkhash import ascii_ng_columns
except ImportError:
    _ng_columns = None
else:
    _ng_columns = ascii_ng_columns


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


def _slow(batch: Batch, lines: list[bytes], first_line: int, offsets: list[int], hash_size: int) -> int:
    """Fill ``batch`` line by line (precise errors); returns the list's template-hash size."""
    hashes: list[bytes] = []
    positions: list[int] = []
    batch.positions = positions
    for i, line in enumerate(lines):
        number, index = first_line + i, batch.first_index + i
        if not line:
            raise _err("empty line, expected a measurement record", number, index)
        rec, logged = parse_line(line, number, index)
        if not hash_size:
            hash_size = len(logged)
        elif len(logged) != hash_size:
            raise _err(
                f"template hash has {len(logged)} bytes, the list's earlier entries have {hash_size}", number, index
            )
        ids = template_fields(rec.template)
        assert ids is not None
        d = describe(ids, rec.fields)
        positions.append(number)
        batch.pcrs.append(rec.pcr)
        hashes.append(logged)
        batch.templates.append(rec.template)
        batch.inputs.append(hash_input(rec.template, rec.fields))
        batch.paths.append(d.path)
        batch.algos.append(d.digest_algorithm)
        batch.digests.append(d.digest)
        batch.sigs.append(d.signature)
        if d.other_signature:
            batch.other_sigs.append(i)
        batch.end = offsets[i]
    batch.hashes = b"".join(hashes)
    return hash_size


def _fast(batch: Batch, lines: list[bytes], first_line: int, hash_size: int) -> bool:
    """Fill ``batch`` from a chunk of one common template; False if the chunk needs the slow path.

    Such lines are ``10 HASH ima-ng sha256:DIGEST PATH`` (ima-sig: ``... PATH SIG``): fixed-width
    columns up to the path, so a column is one C-level slice per line, and is then checked whole
    (one ``join`` and then ``translate`` or strided slices, not a loop over lines): every line
    starts ``10 ``, the hash and digest are lowercase hex of the right length, and the constant
    middle and the space after the digest are at the same place on every line. Lines the kernel
    would not write this way (another PCR, uppercase hex, a short field...) leave the chunk to the
    line-by-line reader, which gives the precise error or the same result.
    """
    first = lines[0]
    n = len(lines)
    h_end = first.find(b" ", 3)
    n_end = first.find(b" ", h_end + 1)
    colon = first.find(b":", n_end + 1)
    if min(h_end, n_end, colon) < 0:
        return False
    name = first[h_end + 1 : n_end].decode("ascii", "replace")
    has_sig = _FAST.get(name)
    prefix = first[n_end + 1 : colon]
    algo = prefix.rpartition(b":")[2].decode("ascii", "replace")
    size = DIGEST_SIZES.get(algo)
    hex_len = h_end - 3
    if has_sig is None or size is None or hex_len % 2 or hex_len // 2 not in BANK_BY_SIZE:
        return False
    if hash_size and hex_len != 2 * hash_size:
        return False
    d_end = colon + 1 + 2 * size
    head = _LEN4[len(prefix) + 2 + size] + prefix + b":\0"
    if not has_sig and _ng_columns is not None:
        # The same checks and columns as below, in C: this is most of an incremental round's parsing.
        columns = _ng_columns(lines, h_end, colon, d_end, head)
        if columns is None:
            return False
        hashes, inputs, path_text, digest_text = columns
        _fill(batch, first_line, n, hashes, name, inputs, path_text, algo, digest_text, [b""] * n)
        return True
    # "10 " HASH on every line: the constant bytes by strided slices of the joined column, the
    # rest lowercase hex (nothing else is left when hex digits are deleted). bytes.fromhex skips
    # the spaces, so it yields 0x10 and the hash for every line.
    width = h_end
    hash_column = b"".join(map(itemgetter(slice(0, h_end)), lines))
    if len(hash_column) != n * width or hash_column.translate(None, _HEX) != b" " * n:
        return False
    if hash_column[0::width] != b"1" * n or hash_column[1::width] != b"0" * n or hash_column[2::width] != b" " * n:
        return False
    # " ima-ng sha256:" DIGEST " " on every line, the same way.
    mid = first[h_end : colon + 1]
    width = d_end + 1 - h_end
    column = b"".join(map(itemgetter(slice(h_end, d_end + 1)), lines))
    if len(column) != n * width or column.translate(None, _HEX) != (mid + b" ").translate(None, _HEX) * n:
        return False
    if column[width - 1 :: width] != b" " * n:
        return False
    for k in range(len(mid)):
        if column[k::width] != mid[k : k + 1] * n:
            return False
    digest_hex = list(map(itemgetter(slice(colon + 1, d_end)), lines))
    tails = list(map(itemgetter(slice(d_end + 1, None)), lines))
    try:
        paths: Sequence[bytes]
        if has_sig:
            paths, seps, sig_hex = zip(*map(_rpart_space, tails), strict=True)
            if seps.count(b" ") != n:
                return False
            sigs = list(map(unhexlify, sig_hex))
        else:
            paths, sigs = tails, [b""] * n
        name_lens = list(map(_LEN4_NUL.__getitem__, map(len, paths)))
        digests = map(unhexlify, digest_hex)
        if has_sig:
            sig_lens = list(map(_LEN4.__getitem__, map(len, sigs)))
            parts = zip(repeat(head), digests, name_lens, paths, repeat(b"\0"), sig_lens, sigs)
        else:
            parts = zip(repeat(head), digests, name_lens, paths, repeat(b"\0"))
        inputs = list(map(_join, parts))
    except (HexError, ValueError, IndexError):  # not hex, or a path or signature longer than any real one
        return False
    try:
        path_text = list(map(_decode, paths))
    except UnicodeDecodeError:
        path_text = list(map(_decode_path, paths))
    hashes = bytes.fromhex(hash_column.decode("ascii"))
    _fill(batch, first_line, n, hashes, name, inputs, path_text, algo, list(map(_decode, digest_hex)), sigs)
    return True


def _fill(
    batch: Batch, first_line: int, n: int, hashes: bytes, name: str, inputs: list[bytes], paths: list[str],
    algo: str, digests: list[str], sigs: list[bytes],
) -> None:  # fmt: skip
    batch.positions = range(first_line, first_line + n)
    batch.pcrs = [10] * n
    batch.hashes = hashes
    batch.hash_prefix = b"\x10"
    batch.templates = [name] * n
    batch.inputs = inputs
    batch.paths = paths
    batch.algos = [algo] * n
    batch.digests = digests
    batch.sigs = sigs


def parse_ascii(
    data: bytes, *, base: int = 0, first_index: int = 0, first_line: int = 1, hash_size: int = 0
) -> Iterator[Batch]:
    """Read ASCII records from ``data`` (which starts at byte ``base`` of the list), chunk by chunk.

    Every complete line is a record; an unterminated last line is a partial trailing record,
    reported on the last batch and not consumed. Every template hash has ``hash_size`` bytes (0:
    the first record's size). Raises ParseError (line, entry index) on the first malformed record.
    """
    complete = data.rfind(b"\n") + 1  # records end in a newline; the rest is a partial record
    tail = data[complete:]
    at, pos, line_no, index = 0, base, first_line, first_index
    while at < complete:
        # About CHUNK lines at a time, so only one chunk of lines exists as objects at once.
        cut = data.find(b"\n", min(at + CHUNK * 128, complete - 1)) + 1
        text = data[at:cut]
        chunk = text.split(b"\n")
        chunk.pop()
        at = cut
        batch = Batch(first_index=index)
        if b"\0" not in text and _fast(batch, chunk, line_no, hash_size):
            hash_size = len(batch.hashes) // len(chunk) - len(batch.hash_prefix)
        else:
            batch = Batch(first_index=index)
            offsets: list[int] = []
            p = pos
            for line in chunk:
                p += len(line) + 1
                offsets.append(p)
            hash_size = _slow(batch, chunk, line_no, offsets, hash_size)
        pos += len(text)
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
