"""The accept-only schema pre-check (protocol/accept.py) never accepts what jsonschema refuses.

Documents are generated from each schema (strings from its patterns, every property, enum values),
then damaged in the ways a hostile peer would try: a required field dropped, an extra field, a
value of another type, a string with a trailing newline (``$`` matches before one in Python's
``re``), too long, the wrong enum value. Whatever the pre-check accepts, jsonschema must accept;
what it refuses goes to jsonschema, which names the problem (the error text is jsonschema's)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import InputError
from floodlight_trust.protocol import SCHEMA_NAMES, _accept, schema, validate
from floodlight_trust.protocol.accept import BASE64_PATTERN, base64_matches

COMPILED = [n for n in SCHEMA_NAMES if _accept(n) is not None]
OTHER_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3),
    st.just([]), st.just({}), st.just(True), st.just(1.0),
)  # fmt: skip


def _value(draw: Callable[..., Any], s: Any, depth: int = 0) -> Any:
    """A value meant to satisfy subschema ``s`` (it may not: the assertion below holds either way)."""
    if s is True or not isinstance(s, dict) or depth > 4:
        return draw(OTHER_VALUES)
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return draw(st.sampled_from(s["enum"]))
    kinds = s.get("type", "string")
    kind = draw(st.sampled_from(kinds)) if isinstance(kinds, list) else kinds
    if kind == "string":
        if "pattern" in s:
            text = draw(st.from_regex(s["pattern"], fullmatch=True))
        else:
            text = draw(st.text(max_size=8))
        if "maxLength" in s:
            text = text[: s["maxLength"]]
        return text
    if kind == "integer":
        return draw(st.integers(s.get("minimum", -5), s.get("maximum", 5)))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    if kind == "array":
        n = draw(st.integers(s.get("minItems", 0), min(s.get("maxItems", 3), 3)))
        return [_value(draw, s.get("items", True), depth + 1) for _ in range(n)]
    doc = {}
    for name, sub in s.get("properties", {}).items():
        if name in s.get("required", []) or draw(st.booleans()):
            doc[name] = _value(draw, sub, depth + 1)
    return doc


def _damage(draw: st.DrawFn, doc: Any) -> Any:
    if not isinstance(doc, dict) or not doc:
        return draw(OTHER_VALUES)
    doc = dict(doc)
    key = draw(st.sampled_from(sorted(doc)))
    how = draw(st.sampled_from(["drop", "extra", "retype", "newline", "long", "nested"]))
    if how == "drop":
        del doc[key]
    elif how == "extra":
        doc[draw(st.text(min_size=1, max_size=5))] = draw(OTHER_VALUES)
    elif how == "retype":
        doc[key] = draw(OTHER_VALUES)
    elif how == "newline" and isinstance(doc[key], str):
        doc[key] += "\n"
    elif how == "long" and isinstance(doc[key], str):
        doc[key] += "a" * 300
    elif how == "nested":
        doc[key] = _damage(draw, doc[key])
    return doc


@st.composite
def documents(draw: st.DrawFn, name: str) -> tuple[Any, bool]:
    doc = _value(draw, schema(name))
    damaged = draw(st.booleans())
    return (_damage(draw, doc) if damaged else doc), damaged


def _jsonschema_valid(name: str, doc: Any) -> bool:
    s = schema(name)
    return bool(jsonschema.validators.validator_for(s)(s).is_valid(doc))


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_accepts_only_what_jsonschema_accepts(name: str, data: st.DataObject) -> None:
    doc, _ = data.draw(documents(name))
    check = _accept(name)
    assert check is not None
    if check(doc):
        assert _jsonschema_valid(name, doc), doc
    # validate() agrees with jsonschema on every document, accepted here or not.
    if _jsonschema_valid(name, doc):
        validate(name, doc)
    else:
        with pytest.raises(InputError, match=f"invalid {name} message"):
            validate(name, doc)


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_check_accepts_valid_documents(name: str, data: st.DataObject) -> None:
    """Not a check that refuses everything (every message would then pay for jsonschema too)."""
    doc = _value(data.draw, schema(name))
    if _jsonschema_valid(name, doc):
        check = _accept(name)
        assert check is not None and check(doc), doc


def test_the_enrollment_path_schemas_are_compiled() -> None:
    for name in ("nonce_request", "enclave_evidence", "host_evidence", "challenge", "credentials_ack"):
        assert name in COMPILED, name


def test_trailing_newline_and_types_go_to_jsonschema() -> None:
    ok = {"purpose": "enclave", "host": "h1", "vnf": "v1"}
    check = _accept("nonce_request")
    assert check is not None and check(ok)
    # Python's $ matches before a final newline: both jsonschema and the pre-check use re.search.
    assert check({**ok, "host": "h1\n"}) == _jsonschema_valid("nonce_request", {**ok, "host": "h1\n"})
    for bad in ({**ok, "purpose": "other"}, {**ok, "x": 1}, {"purpose": "host"}, {**ok, "host": 5}, [ok], None):
        assert not check(bad)
        with pytest.raises(InputError, match="invalid nonce_request message"):
            validate("nonce_request", bad)


B64_TEXT = st.text(alphabet="AZaz09+/=\n\r -_.é\x00", max_size=40)


@st.composite
def base64_like(draw: st.DrawFn) -> str:
    """Real base64 (padded or not), then perhaps damaged: a character changed, added or removed."""
    raw = draw(st.binary(max_size=64))
    text = base64.b64encode(raw).decode()
    if draw(st.booleans()):
        text = text.rstrip("=")
    how = draw(st.sampled_from(["keep", "put", "drop", "append"]))
    at = draw(st.integers(0, len(text)))
    c = draw(st.sampled_from("A/+=\n\r -_é\x00"))
    if how == "put" and text:
        text = text[: min(at, len(text) - 1)] + c + text[min(at, len(text) - 1) + 1 :]
    elif how == "drop" and text:
        text = text[:at] + text[at + 1 :]
    elif how == "append":
        text = text[:at] + c + text[at:]
    return text


@settings(max_examples=400, deadline=None)
@given(v=st.one_of(B64_TEXT, base64_like()))
def test_the_base64_check_accepts_and_refuses_exactly_what_the_pattern_does(v: str) -> None:
    assert base64_matches(v) == (re.search(BASE64_PATTERN, v) is not None)


def test_the_base64_check_on_the_edges_of_the_pattern() -> None:
    for v in ["", "=", "==", "A", "AA=", "AAAA=", "AAAA\n", "AA==\n", "QUJD", base64.b64encode(bytes(4700)).decode()]:
        assert base64_matches(v) and re.search(BASE64_PATTERN, v), repr(v)
    for v in ["A===", "AA==AA==", "AB=C", " AAAA", "AAAA\n\n", "AAAA\r\n", "-_AA", "QUJé", "QU\x00J", "AAAA AAAA"]:
        assert not base64_matches(v) and not re.search(BASE64_PATTERN, v), repr(v)
    assert all(p == BASE64_PATTERN for p in _patterns(schema("enclave_evidence")) if "A-Za-z0-9+/" in p)


def _patterns(s: Any) -> list[str]:
    if isinstance(s, dict):
        own = [s["pattern"]] if isinstance(s.get("pattern"), str) else []
        return own + [p for v in s.values() for p in _patterns(v)]
    if isinstance(s, list):
        return [p for v in s for p in _patterns(v)]
    return []
