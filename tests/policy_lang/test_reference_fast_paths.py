"""The fast paths of the Keylime runtime policy reader agree with the schema (jsonschema) and with
the item-by-item checks they stand in front of, on fuzzed documents."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_lang import reference

HEX = "0123456789abcdef"
GOOD = {
    "meta": {"version": 1, "generator": 3},
    "release": 0,
    "digests": {"/bin/sh": ["a" * 64]},
    "excludes": [],
    "keyrings": {},
    "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
    "ima-buf": {},
    "verification-keys": "",
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-3, max_value=5),
    st.sampled_from(["", "sha1", "sha256", "md5", "x"]),
)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3))


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """The good document with a few values replaced, removed or added, at any depth."""
    doc = json.loads(json.dumps(GOOD))
    for _ in range(draw(st.integers(0, 3))):
        places = [doc] + [doc[k] for k in ("meta", "ima") if isinstance(doc.get(k), dict)]
        where = draw(st.sampled_from(places))
        key = draw(st.sampled_from([*where.keys(), "timestamp", "extra"]))
        if draw(st.booleans()):
            where[key] = draw(values)
        else:
            where.pop(key, None)
    return doc


@settings(max_examples=300, deadline=None)
@given(documents())
def test_a_plainly_valid_skeleton_is_valid_for_the_schema(doc: Any) -> None:
    schema_ok = next(iter(reference._skeleton_validator().iter_errors(doc)), None) is None
    if reference._plainly_valid_skeleton(doc):
        assert schema_ok
    assert reference._valid_skeleton(doc) == schema_ok


digest_items = st.one_of(
    st.text(HEX, min_size=38, max_size=130),
    st.text(HEX + "AG\n ", min_size=40, max_size=64),
    st.integers(),
    st.none(),
)


def _item_by_item(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    pattern = re.compile(r"[0-9a-f]{40,128}")
    return all(
        type(v) is list and v and all(type(x) is str and pattern.fullmatch(x) for x in v) for v in obj.values()
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.dictionaries(st.text(max_size=5), st.lists(digest_items, max_size=3), max_size=6),
        st.dictionaries(st.text(max_size=5), st.lists(st.text(HEX, min_size=40, max_size=128), max_size=2), max_size=6),
        values,
    )
)
def test_digests_objects_are_checked_as_item_by_item(obj: Any) -> None:
    assert reference._check_digests_object(obj) == _item_by_item(obj)


def test_one_digest_per_file_compiles_as_the_general_form() -> None:
    doc = json.loads(json.dumps(GOOD))
    doc["digests"] = {"/a": ["a" * 40], "/b": ["b" * 64]}
    one = reference.keylime_from_document(doc, json.dumps(doc), "rp.json")
    assert one.digests == {"/a": "a" * 40, "/b": "b" * 64}
    doc["digests"]["/c"] = ["c" * 40, "d" * 40]
    several = reference.keylime_from_document(doc, json.dumps(doc), "rp.json")
    assert several.digests == {"/a": "a" * 40, "/b": "b" * 64, "/c": frozenset({"c" * 40, "d" * 40})}
