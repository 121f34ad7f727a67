"""MRENCLAVE of a simulated enclave: the SHA-256 of its image (a file or a directory), read here."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from floodlight_trust.fileio import read_bytes


def measure_enclave_image(image: bytes | Path) -> bytes:
    """MRENCLAVE of a simulated enclave: SHA-256 of the VNF's enclave image (code + configuration).

    ``image`` is the image bytes, a file, or a directory (then every regular file, in sorted relative
    path order, contributes its path and content, length-prefixed), so any byte change changes it.
    """
    if isinstance(image, bytes | bytearray):
        return hashlib.sha256(image).digest()
    path = Path(image)
    if path.is_dir():
        h = hashlib.sha256(b"floodlight-trust enclave image v1\0")
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(path).as_posix().encode("utf-8")
            data = read_bytes(f, what="enclave image file")
            h.update(struct.pack("<Q", len(rel)) + rel + struct.pack("<Q", len(data)))
            h.update(data)
        return h.digest()
    return hashlib.sha256(read_bytes(path, what="enclave image")).digest()
