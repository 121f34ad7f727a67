"""protocol.b64decode: the fast strict path decodes exactly what the reference (regex-checked) path
decodes, and refuses exactly what it refuses."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import InputError
from floodlight_trust.protocol import b64decode


def _reference(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _ours(text: str) -> bytes | None:
    try:
        return b64decode(text, what="field")
    except InputError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDab01+/=\n -_é", max_size=24))
def test_same_outcome_as_the_reference_on_arbitrary_text(text: str) -> None:
    assert _ours(text) == _reference(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_round_trip(data: bytes) -> None:
    assert b64decode(base64.b64encode(data).decode(), what="field") == data


@pytest.mark.parametrize("text", ["", "==", "=", "QQ==", "QQ=", "QQ", "QQ===", "Q===", "QUJD", "QUJD\n", "QU JD"])
def test_edge_cases_match_the_reference(text: str) -> None:
    assert _ours(text) == _reference(text)


def test_refusal_names_the_field() -> None:
    with pytest.raises(InputError, match=r"host_evidence\.ima_list is not valid base64"):
        b64decode("not base64!", what="host_evidence.ima_list")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=40))
def test_same_outcome_as_the_reference_on_base64_alphabet_text(text: str) -> None:
    assert _ours(text) == _reference(text)


def test_encode_is_the_standard_encoding() -> None:
    from floodlight_trust.protocol import b64encode

    data = bytes(range(256)) * 3
    assert (
        b64encode(data) == base64.b64encode(data).decode()
        and b64encode(memoryview(data)[5:]) == base64.b64encode(data[5:]).decode()
    )
