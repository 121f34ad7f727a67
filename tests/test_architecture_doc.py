"""docs/architecture.md is the map of the tree: every module it names exists, and every package of
floodlight_trust is on it (STYLE.md: keep docs/architecture.md true to the tree)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "floodlight_trust"

CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A path: slash-separated names (a trailing slash for a directory), or one file name with a suffix.
PATH = re.compile(r"[A-Za-z0-9_.*-]+(?:/[A-Za-z0-9_.*-]+)*/?")
FILE = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.(?:py|lark|json|toml|sh|der|sql)\b")
SUFFIXES = (".py", ".lark", ".json", ".toml", ".sh", ".der", ".sql", ".md", ".policy")


def _exists(name: str, bases: tuple[Path, ...]) -> bool:
    return any(list(base.glob(name.rstrip("/"))) for base in bases)


def _file_names(*tops: Path) -> set[str]:
    return {p.name for top in tops for p in top.rglob("*") if "__pycache__" not in p.parts}


def _is_path(span: str) -> bool:
    return bool(PATH.fullmatch(span)) and ("/" in span or span.endswith(SUFFIXES))


def named_paths(text: str) -> list[str]:
    """The code spans of the prose and tables that are paths (not commands, calls or settings)."""
    return [s for s in CODE_SPAN.findall(text) if _is_path(s)]


def layout(text: str) -> list[tuple[str, list[str]]]:
    """The package layout block: (directory, the files named on its lines) for each directory line.

    A line ``  name/   a.py, b.py: why`` opens directory ``name`` under the one above it that is less
    indented; lines without a ``name/`` at their start continue the directory above them.
    """
    block = text.split("## Package layout", 1)[1].split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    out: list[tuple[str, list[str]]] = []
    for raw in block.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip())
        head = raw.split()[0]
        if head.endswith("/") and PATH.fullmatch(head):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1] if stack else ""
            directory = parent + head
            stack.append((indent, directory))
            out.append((directory, []))
            rest = raw.strip()[len(head) :]
        else:
            rest = raw
        if out:
            out[-1][1].extend(FILE.findall(rest))
    return out


def test_every_path_the_document_names_exists() -> None:
    text = DOC.read_text()
    roots = (REPO, PACKAGE)
    names = _file_names(REPO / "floodlight_trust", REPO / "policy_lang", REPO / "java-bridge", REPO / "configs")
    missing = []
    for span in named_paths(text):
        if "/" in span:
            ok = _exists(span, roots)
        else:
            ok = span in names or (REPO / span).exists()  # a file named in a row beside its directory
        if not ok:
            missing.append(span)
    assert not missing, f"docs/architecture.md names paths that are not in the tree: {sorted(set(missing))}"


def test_every_file_of_the_layout_block_is_in_its_directory() -> None:
    missing = []
    for directory, files in layout(DOC.read_text()):
        base = REPO / directory
        if not base.is_dir():
            missing.append(directory)
            continue
        # a bare name is in the directory of its line; a path with a slash is from the repository's top
        missing += [f"{directory}{f}" for f in files if "/" not in f and not _exists(f, (base,))]
        missing += [f for f in files if "/" in f and not _exists(f, (REPO,))]
    assert not missing, f"the package layout of docs/architecture.md names what is not there: {missing}"


def test_every_package_is_on_the_map() -> None:
    drawn = {directory.rstrip("/") for directory, _ in layout(DOC.read_text())}
    packages = {
        str(init.parent.relative_to(REPO)) for init in PACKAGE.rglob("__init__.py") if init.parent != PACKAGE
    }
    assert "floodlight_trust" in drawn
    assert not packages - drawn, f"packages missing from docs/architecture.md's layout: {sorted(packages - drawn)}"
