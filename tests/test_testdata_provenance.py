"""The repository stands alone: its real evidence lives in tests/data with provenance, and nothing
reaches outside the clone for it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO, TESTDATA

# The pattern a path into the workplace's shared folder would have in code or docs.
_OUTSIDE = re.compile(r"\.\./shared|parent\s*/\s*\"shared\"|\"shared\"\s*/\s*\"testdata\"")


def _provenance_text(path: Path) -> str:
    """Every PROVENANCE.md from TESTDATA down to the file's folder, concatenated."""
    texts = []
    folder = path.parent
    while True:
        prov = folder / "PROVENANCE.md"
        if prov.is_file():
            texts.append(prov.read_text(encoding="utf-8"))
        if folder == TESTDATA:
            break
        folder = folder.parent
    return "\n".join(texts)


def test_every_evidence_file_is_named_by_a_provenance() -> None:
    unnamed = []
    files = [p for p in TESTDATA.rglob("*") if p.is_file() and p.name not in {"PROVENANCE.md", "SHA256SUMS"}]
    assert len(files) > 30
    for path in files:
        text = _provenance_text(path)
        rel = path.relative_to(TESTDATA)
        # A file is named by its own name, or by its folder when the provenance describes a folder.
        candidates = {path.name, str(rel), str(rel.parent) + "/", *(f"{p.name}/" for p in rel.parents if p.name)}
        if not any(c in text for c in candidates):
            unnamed.append(str(rel))
    assert unnamed == []


def test_nothing_reads_outside_the_clone() -> None:
    offenders = []
    roots = ["tests", "floodlight_trust", "policy_lang", "benchmarks", "scripts", "configs", "docs"]
    files = [REPO / "Makefile", REPO / "README.md", REPO / "pyproject.toml"]
    for root in roots:
        files.extend(p for p in (REPO / root).rglob("*") if p.is_file() and p.suffix in {".py", ".md", ".toml", ".sh", ".policy", ".yaml"})
    for path in files:
        if path.is_relative_to(TESTDATA) or path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
