"""A fast, accept-only pre-check for the protocol's JSON Schemas (``validate``'s first step).

jsonschema's validator dispatches every keyword of every subschema through generic Python (a new
validator object per property it descends into): on the enrollment path the two schema checks
cost more CPU than the enclave's quote verification. Most messages are valid, so this module
compiles each schema, once, into plain Python checks that can only say "valid for sure": any
keyword outside a small, exactly understood subset makes the schema uncompiled (jsonschema alone
checks it), and any doubt while checking (a value of an unexpected type, a failed check) returns
False, after which jsonschema checks the document and names the problem. So a document is
accepted here only if jsonschema accepts it too; what is refused, and how it is reported, is
jsonschema's alone (tests/protocol/test_accept.py checks the first claim on every schema).

The subset (draft 2020-12 meanings): ``type`` (strings, objects, arrays, booleans, null, integers
that are Python ints), ``properties``, ``required``, ``additionalProperties`` (false or a schema),
``pattern`` (``re.search``, as jsonschema; the base64 pattern by an exact equivalent), ``minLength``/``maxLength``, ``enum``/``const`` of
strings, ``propertyNames``, ``items``, ``minItems``/``maxItems``, integer ``minimum``/``maximum``; keywords jsonschema
does not assert (annotations) are ignored, as it ignores them.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pybase64

Check = Callable[[Any], bool]

# The protocol's base64 fields (standard alphabet, at most two '=' at the end, as jsonschema's
# re.search reads it: also a final newline). Its exact equivalent below is about 15x cheaper on a
# quote's 6 kB, the largest strings of the enrollment path.
BASE64_PATTERN = "^[A-Za-z0-9+/]*={0,2}$"
_base64_search = re.compile(BASE64_PATTERN).search


def base64_matches(v: str) -> bool:
    """``re.search(BASE64_PATTERN, v) is not None``, exactly. What strict base64 decoding accepts
    (standard alphabet, '=' padding only at the end, a length of 4n) the pattern accepts; any other
    string (unpadded, a newline, another character) is left to the pattern itself."""
    try:
        pybase64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return _base64_search(v) is not None
    return True


# The keywords mirrored here; any other keyword jsonschema asserts makes a schema uncompiled.
_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "pattern",
        "minLength",
        "maxLength",
        "enum",
        "const",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "propertyNames",
    }
)


class _Unsupported(Exception):
    """The schema uses something this module does not mirror exactly: jsonschema alone checks it."""


def _is_integer(v: Any) -> bool:
    return type(v) is int  # bools are ints to Python, not to JSON Schema; floats: jsonschema decides


_TYPES: Mapping[str, Check] = {
    "string": lambda v: type(v) is str,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "integer": _is_integer,
}


def compile_schema(schema: Any, asserted: Collection[str]) -> Check | None:
    """The accept-only check of ``schema``, or None when it uses anything outside the subset.

    ``asserted``: the keywords the schema's jsonschema validator class checks (its ``VALIDATORS``);
    the others (``title``, ``description``, ``contentEncoding`` in draft 2020-12...) it ignores,
    and so does this check."""
    try:
        return _Compiler(frozenset(asserted)).compile(schema)
    except _Unsupported:
        return None


class _Compiler:
    def __init__(self, asserted: frozenset[str]):
        self.asserted = asserted

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema)[:40])
        unknown = (set(schema) & self.asserted) - _KEYWORDS
        if unknown:
            raise _Unsupported(", ".join(sorted(unknown)))
        # In the order jsonschema's result does not depend on; each keyword check applies, as in
        # JSON Schema, only to instances of its type (a pattern says nothing about a number).
        checks: list[Check] = []
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not names or any(n not in _TYPES for n in names):
                raise _Unsupported(f"type {names!r}")
            tests = [_TYPES[n] for n in names]
            checks.append(tests[0] if len(tests) == 1 else _any_of(tests))
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if not isinstance(values, list) or not all(type(x) is str for x in values):
                raise _Unsupported("enum or const of non-strings")
            allowed = frozenset(values)
            checks.append(lambda v: type(v) is str and v in allowed)
        checks += self._strings(schema) + self._numbers(schema) + self._objects(schema) + self._arrays(schema)
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    def _strings(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise _Unsupported("pattern")
            if schema["pattern"] == BASE64_PATTERN:
                checks.append(base64_matches)
            else:
                search = re.compile(schema["pattern"]).search  # jsonschema: re.search(pattern, instance)
                checks.append(lambda v: search(v) is not None)
        low, high = _bound(schema, "minLength"), _bound(schema, "maxLength")
        if low is not None:
            checks.append(lambda v: len(v) >= low)
        if high is not None:
            checks.append(lambda v: len(v) <= high)
        return [_when(str, checks)] if checks else []

    def _numbers(self, schema: dict[str, Any]) -> list[Check]:
        low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
        if low is None and high is None:
            return []

        def check(v: Any) -> bool:
            if type(v) is not int and type(v) is not float:
                return not isinstance(v, int | float)  # not a number: ignored; a bool: jsonschema decides
            return (low is None or v >= low) and (high is None or v <= high)

        return [check]

    def _objects(self, schema: dict[str, Any]) -> list[Check]:
        if not {"properties", "required", "additionalProperties", "propertyNames"} & set(schema):
            return []
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise _Unsupported("properties or required")
        if not all(type(r) is str for r in required):
            raise _Unsupported("required")
        subs = {name: self.compile(sub) for name, sub in properties.items()}
        extra = schema.get("additionalProperties", True)
        extra_check: Check | None = None if extra is False else self.compile(extra)
        needed = tuple(required)
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None

        def check(v: dict[str, Any]) -> bool:
            for name in needed:
                if name not in v:
                    return False
            for name, value in v.items():
                if names is not None and not names(name):
                    return False
                sub = subs.get(name)
                if sub is None:
                    if extra_check is None or not extra_check(value):
                        return False
                elif not sub(value):
                    return False
            return True

        return [_when(dict, [check])]

    def _arrays(self, schema: dict[str, Any]) -> list[Check]:
        if not {"items", "minItems", "maxItems"} & set(schema):
            return []
        item = self.compile(schema["items"]) if "items" in schema else None
        low, high = _bound(schema, "minItems"), _bound(schema, "maxItems")

        def check(v: list[Any]) -> bool:
            if (low is not None and len(v) < low) or (high is not None and len(v) > high):
                return False
            return item is None or all(item(x) for x in v)

        return [_when(list, [check])]


def _bound(schema: dict[str, Any], keyword: str) -> int | None:
    value = schema.get(keyword)
    if value is not None and not _is_integer(value):
        raise _Unsupported(keyword)
    return value


def _any_of(tests: list[Check]) -> Check:
    return lambda v: any(t(v) for t in tests)


def _when(kind: type, checks: list[Check]) -> Check:
    """``checks`` for instances of ``kind`` (as jsonschema decides the type: isinstance); others pass."""
    if len(checks) == 1:
        only = checks[0]
        return lambda v: not isinstance(v, kind) or only(v)
    return lambda v: not isinstance(v, kind) or all(c(v) for c in checks)
