"""JSON from a peer, bounded: what every listener (request bodies) and every JSON client (answers
of the VM and the agents) parses before a schema validator or a handler sees it."""

from __future__ import annotations

import json
from typing import Any

from floodlight_trust.errors import InputError

# No protocol message nests deeper than a few levels; deeper documents are refused before a schema
# validator or a handler recurses into them (RecursionError was a 500 and aborted re-attestation).
MAX_JSON_DEPTH = 32


def parse_json(body: bytes, *, what: str = "request body") -> Any:
    """JSON from a peer, or InputError: bad UTF-8 or JSON, lone surrogates, nesting deeper than
    :data:`MAX_JSON_DEPTH`, integers too long to convert, NaN/Infinity. Never anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InputError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # int too long (sys.set_int_max_str_digits), NaN/Infinity
        raise InputError(f"{what} is not acceptable JSON: {str(e)[:120]}") from None
    # A lone surrogate can only come from a backslash-u escape (strict UTF-8 has none), and a document with
    # at most MAX_JSON_DEPTH brackets cannot nest deeper: then the walk has nothing to find.
    escapes = "\\u" in text
    if escapes or text.count("{") + text.count("[") > MAX_JSON_DEPTH:
        _check_tree(value, what, strings=escapes)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_tree(value: Any, what: str, *, strings: bool = True) -> None:
    # Iterative, so the walk itself cannot recurse too deeply. json.loads accepts "\ud800"; such a
    # string cannot be encoded again (UnicodeEncodeError deep in a handler: the original 500).
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if not strings:
                continue
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{what} contains a lone surrogate (\\ud800-\\udfff) in a string") from None
        elif isinstance(v, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise InputError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
            items = [*v.keys(), *v.values()] if isinstance(v, dict) else v
            stack.extend((item, depth + 1) for item in items)
