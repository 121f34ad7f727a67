"""DCAP collateral from disk: a dcap-qvl JSON file, or a directory of PCS responses, certificates
and CRLs. This module only reads; :mod:`floodlight_trust.evidence.collateral` (pure) parses and
assembles what it read."""

from __future__ import annotations

from pathlib import Path

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.collateral import Collateral, collateral_from_files, collateral_from_json
from floodlight_trust.fileio import read_bytes

# Notes and quotes kept beside the collateral in a test-data directory are not collateral.
SKIPPED_SUFFIXES = (".md", ".txt", ".dat")


def load_collateral(path: str | Path) -> Collateral:
    """Load collateral from a dcap-qvl JSON file, or from a directory of PCS responses and files
    (see :func:`~floodlight_trust.evidence.collateral.collateral_from_files` for what it may hold;
    hidden files and ``*.md``, ``*.txt``, ``*.dat`` are skipped). Errors name the file."""
    p = Path(path)
    if not p.is_dir():
        raw = read_bytes(p, what="collateral file")
        try:
            return collateral_from_json(raw)
        except ParseError as e:
            raise e.with_file(str(p)) from None
    files = [
        (str(f), read_bytes(f, what="collateral file"))
        for f in sorted(p.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.suffix not in SKIPPED_SUFFIXES
    ]
    return collateral_from_files(files, str(p))
