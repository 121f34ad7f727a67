"""parse_json's bounds hold on both sides of its shortcut (no walk when the text has no backslash-u
escape and at most MAX_JSON_DEPTH brackets)."""

from __future__ import annotations

import json

import pytest

from floodlight_trust.errors import InputError
from floodlight_trust.http.peer_json import MAX_JSON_DEPTH, parse_json


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_depth_limit_at_the_boundary() -> None:
    assert parse_json(nested(MAX_JSON_DEPTH)) is not None  # 32 containers: depths 0..31
    with pytest.raises(InputError, match="nested deeper"):
        parse_json(nested(MAX_JSON_DEPTH + 1))
    # Many brackets side by side (the walk runs) but shallow: accepted.
    assert len(parse_json(json.dumps([[i] for i in range(100)]).encode())) == 100
    # Brackets inside strings count towards the shortcut, never against the limit.
    assert parse_json(json.dumps({"a": "[" * 100}).encode()) == {"a": "[" * 100}


@pytest.mark.parametrize("text", [r'"\ud800"', r'{"k": "\udfff"}', r'["x", ["\uDBFF"]]', r'{"\ud800": 1}'])
def test_lone_surrogates_refused(text: str) -> None:
    with pytest.raises(InputError, match="lone surrogate"):
        parse_json(text.encode())


def test_escapes_that_are_not_lone_surrogates_pass() -> None:
    assert parse_json(rb'"\ud83d\ude00"') == "\U0001f600"  # a pair
    assert parse_json(rb'"\\ud800"') == "\\ud800"  # an escaped backslash, then text
    assert parse_json(rb'"\u00e9"') == "\u00e9"
