"""The parse tables cached beside the package's bytecode (cli/policy.parse_tables_file, given to
policy_lang.parser.keep_tables_in): only in a directory nobody else can write, and a parser loaded
from them parses as one built afresh."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import pytest
from lark import Lark

from floodlight_trust.cli.policy import parse_tables_file
from tests.conftest import REPO


def _opt(package: Path) -> dict[str, str]:
    path = parse_tables_file(package)
    return {"cache": path} if path else {}


def _package(tmp_path: Path, mode: int = 0o755) -> Path:
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    os.chmod(package / "__pycache__", mode)
    return package


def test_the_cache_is_in_a_directory_only_its_owner_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    package = _package(tmp_path)
    assert _opt(package) == {"cache": str(package / "__pycache__/policy_lang.parser.lark-cache")}
    os.chmod(package / "__pycache__", 0o775)  # group-writable: someone else could plant a pickle
    assert _opt(package) == {}
    os.chmod(package / "__pycache__", 0o757)
    assert _opt(package) == {}
    assert _opt(tmp_path / "missing") == {}  # no bytecode directory: no cache


def test_a_cache_file_others_could_write_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    package = _package(tmp_path)
    cache = package / "__pycache__/policy_lang.parser.lark-cache"
    cache.write_bytes(b"not lark's")
    os.chmod(cache, 0o666)
    assert _opt(package) == {}
    os.chmod(cache, 0o644)
    assert _opt(package) == {"cache": str(cache)}


def test_without_bytecode_writing_nothing_is_written_but_a_cache_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    package = _package(tmp_path)
    assert _opt(package) == {}
    cache = package / "__pycache__/policy_lang.parser.lark-cache"
    cache.write_bytes(b"")
    os.chmod(cache, 0o644)
    assert _opt(package) == {"cache": str(cache)}


def test_a_parser_from_the_cache_parses_as_one_built_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    package = _package(tmp_path)
    grammar = resources.files("policy_lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    options = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True}
    fresh = Lark(grammar, **options)  # type: ignore[arg-type]
    Lark(grammar, **options, **_opt(package))  # type: ignore[arg-type]  # writes it
    cache = package / "__pycache__/policy_lang.parser.lark-cache"
    assert cache.stat().st_size > 1000
    loaded = Lark(grammar, **options, **_opt(package))  # type: ignore[arg-type]
    texts = [p.read_text() for p in sorted((REPO / "configs/policies").rglob("*.policy"))]
    assert len(texts) >= 3
    for text in texts:
        assert loaded.parse(text) == fresh.parse(text)
    # A damaged cache is rebuilt, not trusted: lark checks the grammar's hash it starts with.
    cache.write_bytes(b"0" * 64 + b"\n" + cache.read_bytes()[65:])
    again = Lark(grammar, **options, **_opt(package))  # type: ignore[arg-type]
    assert again.parse(texts[0]) == fresh.parse(texts[0])


def test_the_policy_parser_keeps_its_tables_where_the_shell_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from policy_lang import parser

    cache = tmp_path / "tables.lark-cache"
    parser._lark.cache_clear()
    try:
        monkeypatch.setattr(parser, "_tables_file", None)
        parser.keep_tables_in(str(cache))
        fresh_tree = parser.parse((REPO / "configs/policies/common.policy").read_text(), "common.policy")
        assert cache.stat().st_size > 1000
        parser._lark.cache_clear()
        assert parser.parse((REPO / "configs/policies/common.policy").read_text(), "common.policy") == fresh_tree
    finally:
        parser._lark.cache_clear()  # the next test builds the parser without this tmp file
