"""IMA template descriptors and template data: what the kernel stores per entry and how it is hashed.

A measurement is a template (a name such as ``ima-ng`` or a custom descriptor ``d-ng|n-ng|sig``)
plus one data item per template field. The template data is the concatenation of
``le32(len) || data`` for every field, and the template hash is a digest of that, except for the
original ``ima`` template, whose hash covers the 20-byte file digest and the file name zero-padded
to 256 bytes. Field data here is exactly what the kernel stores (names end in a NUL byte, d-ng
digests start with ``algo:\\0``), so writing and re-reading an entry is lossless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

# Digest algorithms by name: size in bytes. Banks a PCR can be replayed into are a subset.
DIGEST_SIZES: dict[str, int] = {
    "md5": 16,
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sm3-256": 32,
    "sha3-256": 32,
    "sha3-384": 48,
    "sha3-512": 64,
}
BANKS: tuple[str, ...] = ("sha1", "sha256", "sha384", "sha512")
BANK_BY_SIZE: dict[int, str] = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}
HASHERS: dict[str, Callable[..., hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

# The kernel's enum hash_algo (include/uapi/linux/hash_info.h), used in signature headers.
KERNEL_HASH_ALGOS: tuple[str, ...] = (
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "rmd128", "rmd256",
    "rmd320", "wp256", "wp384", "wp512", "tgr128", "tgr160", "tgr192", "sm3-256", "streebog256",
    "streebog512", "sha3-256", "sha3-384", "sha3-512",
)  # fmt: skip

BUILTIN_TEMPLATES: dict[str, str] = {
    "ima": "d|n",
    "ima-ng": "d-ng|n-ng",
    "ima-sig": "d-ng|n-ng|sig",
    "ima-ngv2": "d-ngv2|n-ng",
    "ima-sigv2": "d-ngv2|n-ng|sig",
    "ima-buf": "d-ng|n-ng|buf",
    "ima-modsig": "d-ng|n-ng|sig|d-modsig|modsig",
    "evm-sig": "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode",
}

# How each field is shown in the ASCII list (the kernel's field_show functions).
DIGEST, DIGEST_ALGO, STRING, HEX, UINT = "digest", "digest-algo", "string", "hex", "uint"
FIELD_KINDS: dict[str, str] = {
    "d": DIGEST,
    "n": STRING,
    "d-ng": DIGEST_ALGO,
    "d-ngv2": DIGEST_ALGO,
    "n-ng": STRING,
    "sig": HEX,
    "buf": HEX,
    "d-modsig": DIGEST_ALGO,
    "modsig": HEX,
    "evmsig": HEX,
    "iuid": UINT,
    "igid": UINT,
    "imode": UINT,
    "xattrnames": STRING,
    "xattrlengths": HEX,
    "xattrvalues": HEX,
}
UINT_WIDTHS: dict[str, int] = {"iuid": 4, "igid": 4, "imode": 2}  # uid_t/gid_t are u32, umode_t u16
NAME_PAD = 256  # IMA_EVENT_NAME_LEN_MAX + 1, the padded name in the `ima` template hash
MAX_TEMPLATE_NAME = 128  # longer names are corrupt input, not a partial record

_FIELDS_CACHE: dict[str, tuple[str, ...] | None] = {}


def template_fields(name: str) -> tuple[str, ...] | None:
    """The field ids of a template name or custom descriptor, or None if it is unknown."""
    try:
        return _FIELDS_CACHE[name]
    except KeyError:
        pass
    fmt = BUILTIN_TEMPLATES.get(name, name)
    ids = tuple(fmt.split("|"))
    result = ids if all(i in FIELD_KINDS for i in ids) else None
    if len(_FIELDS_CACHE) < 1024:  # names come from input: bound the cache
        _FIELDS_CACHE[name] = result
    return result


class ImaRecord(NamedTuple):
    """One measurement as the kernel keeps it: for writers, tests and the simulated host."""

    pcr: int
    template: str  # template name or custom descriptor, as written in the log
    fields: tuple[bytes, ...]  # raw field data, one item per template field
    violation: bool = False  # the kernel logged a violation: all-zero template hash


def pack_template_data(fields: Sequence[bytes]) -> bytes:
    return b"".join(len(f).to_bytes(4, "little") + f for f in fields)


def hash_input(template: str, fields: Sequence[bytes]) -> bytes:
    """The bytes the template hash covers."""
    if template == "ima":
        digest, name = fields[0], fields[1].rstrip(b"\0")
        return digest + name[:NAME_PAD].ljust(NAME_PAD, b"\0")
    return pack_template_data(fields)


def template_hash(record: ImaRecord, bank: str) -> bytes:
    """The template hash logged for ``record`` in ``bank`` (all zero for a violation)."""
    if record.violation:
        return bytes(DIGEST_SIZES[bank])
    return HASHERS[bank](hash_input(record.template, record.fields)).digest()


def split_digest_field(data: bytes) -> tuple[str, bytes]:
    """``b"sha256:\\0" + digest`` (or ``b"ima:sha256:\\0"``) -> ("sha256", digest); legacy raw -> by size."""
    nul = data.find(b"\0", 0, 40)
    if nul > 0 and data[nul - 1 : nul] == b":":
        prefix = data[: nul - 1].decode("ascii", "replace")
        return prefix.rpartition(":")[2], data[nul + 1 :]
    return {16: "md5", 20: "sha1"}.get(len(data), "unknown"), data


def unpack_template_data(td: bytes, count: int) -> tuple[bytes, ...]:
    """Split template data into ``count`` fields; ValueError(message, offset within td) if malformed."""
    out: list[bytes] = []
    pos, end = 0, len(td)
    for i in range(count):
        if pos + 4 > end:
            raise ValueError(f"template data ends before field {i + 1} of {count}", pos)
        n = int.from_bytes(td[pos : pos + 4], "little")
        pos += 4
        if pos + n > end:
            raise ValueError(f"field {i + 1} length {n} points past the end of the template data", pos - 4)
        out.append(td[pos : pos + n])
        pos += n
    if pos != end:
        raise ValueError(f"{end - pos} bytes left after the {count} template fields", pos)
    return tuple(out)


class Described(NamedTuple):
    path: str
    digest_algorithm: str
    digest: str
    signature: bytes  # the `sig` field (an xattr: type, header, signature), b"" if none
    other_signature: bool  # a modsig or evmsig is present (not verified here)


def describe(ids: tuple[str, ...], fields: Sequence[bytes]) -> Described:
    """The policy-facing facts of an entry: path, file digest algorithm and value, signature."""
    path, algo, digest, sig, other = "", "unknown", "", b"", False
    for fid, data in zip(ids, fields, strict=True):
        if fid in ("n", "n-ng") and not path:
            path = data.rstrip(b"\0").decode("utf-8", "backslashreplace")
        elif fid == "d" and not digest:
            algo, digest = {16: "md5", 20: "sha1"}.get(len(data), "unknown"), data.hex()
        elif fid in ("d-ng", "d-ngv2") and not digest:
            a, d = split_digest_field(data)
            algo, digest = a, d.hex()
        elif fid == "sig":
            sig = data
        elif fid in ("modsig", "evmsig") and data:
            other = True
    return Described(path, algo, digest, sig, other)


def digest_field(algo: str, digest: bytes, v2_type: str | None = None) -> bytes:
    prefix = f"{v2_type}:{algo}" if v2_type else algo
    return prefix.encode("ascii") + b":\0" + digest


def make_entry(
    path: str,
    file_digest: bytes,
    algo: str = "sha256",
    template: str = "ima-ng",
    pcr: int = 10,
    *,
    signature: bytes = b"",
    buffer: bytes = b"",
) -> ImaRecord:
    """Build the entry the kernel would log when measuring ``path`` (for tests and the simulated host).

    Templates: ``ima`` (sha1/md5 only), ``ima-ng``, ``ima-sig``, ``ima-ngv2``, ``ima-sigv2``,
    ``ima-buf`` (``buffer`` is the buffer; ``file_digest`` its digest) or a custom descriptor made
    of d-ng/n-ng/sig/buf fields.
    """
    if DIGEST_SIZES.get(algo) != len(file_digest):
        raise ValueError(f"a {algo} digest has {DIGEST_SIZES.get(algo, '?')} bytes, got {len(file_digest)}")
    ids = template_fields(template)
    if ids is None:
        raise ValueError(f"unknown IMA template {template!r}")
    name = path.encode("utf-8") + b"\0"
    fields: list[bytes] = []
    for fid in ids:
        if fid == "d":
            if algo not in ("sha1", "md5"):
                raise ValueError("the 'ima' template records sha1 or md5 digests only")
            fields.append(file_digest)
        elif fid == "d-ng":
            fields.append(digest_field(algo, file_digest))
        elif fid == "d-ngv2":
            fields.append(digest_field(algo, file_digest, "ima"))
        elif fid in ("n", "n-ng"):
            fields.append(name)
        elif fid == "sig":
            fields.append(signature)
        elif fid == "buf":
            fields.append(buffer)
        else:
            fields.append(b"")
    return ImaRecord(pcr, template, tuple(fields))
