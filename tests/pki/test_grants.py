"""REST grants: the pattern rules, the matching, and the DER extension (a parser: never anything
but ParseError on arbitrary bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import ParseError
from floodlight_trust.pki.grants import (
    HttpMethod,
    RestGrant,
    allowed,
    check_pattern,
    decode_grants,
    encode_grants,
    path_problem,
)

MONITOR = (RestGrant(HttpMethod.GET, "/wm/core/**"), RestGrant(HttpMethod.GET, "/wm/device/"))


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/wm/core/health/json", MONITOR[0]),
        ("GET", "/wm/core", MONITOR[0]),  # '**' matches zero segments
        ("GET", "/wm/device/", MONITOR[1]),
        ("GET", "/wm/device", None),  # the trailing '/' is significant
        ("GET", "/wm/device/00:00:00:01", None),
        ("POST", "/wm/core/health/json", None),
        ("DELETE", "/wm/staticflowpusher/json", None),
        ("GET", "/wm/core/../staticflowpusher/json", None),  # dot segments are refused outright
        ("GET", "/wm/core/%2e%2e/staticflowpusher/json", None),
        ("GET", "/wm//core/x", None),
    ],
)
def test_matching(method: str, path: str, expected: RestGrant | None) -> None:
    assert allowed(MONITOR, method, path) == expected


def test_single_segment_wildcard() -> None:
    grant = RestGrant(HttpMethod.GET, "/wm/*/json")
    assert grant.allows("GET", "/wm/core/json") and not grant.allows("GET", "/wm/json")
    assert not grant.allows("GET", "/wm/a/b/json") and not grant.allows("GET", "/wm//json")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("wm/core", "starts with '/'"),
        ("/wm/**/json", "'**' is only allowed as the last segment"),
        ("/wm/co*", "'*' must be a whole segment"),
        ("/wm/../x", "dot segment"),
        ("/wm//x", "empty segment"),
        ("/wm/%2e", "percent-encoding"),
        ("/wm/x?y=1", "a query"),
        ("/wm/a b", "characters outside"),
    ],
)
def test_malformed_patterns_say_why(pattern: str, problem: str) -> None:
    assert any(problem in p for p in check_pattern(pattern)), check_pattern(pattern)
    with pytest.raises(ValueError, match="path pattern"):
        RestGrant(HttpMethod.GET, pattern)


def test_request_path_problems() -> None:
    assert path_problem("/wm/core/health/json") is None
    assert path_problem("/wm/%2fx") == "path has percent-encoding"
    assert path_problem("/wm/./x") == "path has a dot segment"
    assert path_problem("/wm/core/..;x/firewall") == "path has a dot segment"
    assert path_problem("/wm/a\\b") == "path has a backslash"
    assert path_problem("wm") == "path is not absolute"


def test_der_round_trip_and_exact_bytes() -> None:
    der = encode_grants(MONITOR)
    assert decode_grants(der) == MONITOR
    # SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { UTF8 "GET", UTF8 "/wm/core/**" }, ... } }
    assert der == (
        bytes.fromhex("302d 020101 3028 3012 0c03") + b"GET" + bytes.fromhex("0c0b") + b"/wm/core/**"
        + bytes.fromhex("3012 0c03") + b"GET" + bytes.fromhex("0c0b") + b"/wm/device/"
    )  # fmt: skip
    assert decode_grants(encode_grants(())) == ()


def test_malformed_der_is_located() -> None:
    der = bytearray(encode_grants(MONITOR))
    der[4] = 2  # version 2
    with pytest.raises(ParseError, match="version 2 is not 1") as e:
        decode_grants(bytes(der))
    assert e.value.location is not None and e.value.location.offset == 4
    with pytest.raises(ParseError, match="trailing"):
        decode_grants(encode_grants(MONITOR) + b"\x00")
    bad_method = encode_grants(MONITOR).replace(b"GET", b"GOT", 1)
    with pytest.raises(ParseError, match="grant 1"):
        decode_grants(bad_method)


_segment = st.text(alphabet="abcz09-._~:", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(HttpMethod)), st.lists(_segment, max_size=4), st.sampled_from(["", "/", "/**"])),
        max_size=5,
    )
)
def test_any_valid_grants_round_trip(items: list[tuple[HttpMethod, list[str], str]]) -> None:
    grants = tuple(RestGrant(m, "/" + "/".join(segs) + (tail if segs else tail.lstrip("/"))) for m, segs, tail in items)
    assert decode_grants(encode_grants(grants)) == grants


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        decode_grants(data)
    except ParseError:
        pass
