"""The CA's fast path for plain subjects (pki/ca.py ``_plain_name``) reads a subject exactly as
cryptography's RFC 4514 parser does, or leaves it to that parser."""

from __future__ import annotations

from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.pki.ca import _plain_name, _subject_name

KEYS = st.sampled_from(["CN", "O", "OU", "C", "L", "ST", "DC", "UID", "STREET", "cn", "X"])
VALUES = st.text(alphabet='abcXYZ019 ._:@/-,+=\\"#<>;', min_size=0, max_size=12)
SUBJECTS = st.lists(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), min_size=1, max_size=4).map(",".join)


@settings(max_examples=400, deadline=None)
@given(SUBJECTS)
def test_a_plain_subject_is_read_as_the_rfc4514_parser_reads_it(text: str) -> None:
    fast = _plain_name(text)
    if fast is None:
        return
    parsed = x509.Name.from_rfc4514_string(text)
    assert fast == parsed and fast.public_bytes() == parsed.public_bytes()


def test_the_profiles_subjects_take_the_fast_path_and_anything_else_the_parser() -> None:
    assert _plain_name("CN=vnf-fw-a") == x509.Name.from_rfc4514_string("CN=vnf-fw-a")
    assert _plain_name("CN=vnf-a,O=example,C=DE") == x509.Name.from_rfc4514_string("CN=vnf-a,O=example,C=DE")
    for other in ("CN=a\\,b", "CN=a+O=b", 'CN="a"', "CN=#0101", "CN= a", "CN=", "C=DEU", "UID=1", "CN=a,,O=b"):
        assert _plain_name(other) is None, other
    assert _subject_name("CN=a\\,b") == x509.Name.from_rfc4514_string("CN=a\\,b")  # the parser's reading
