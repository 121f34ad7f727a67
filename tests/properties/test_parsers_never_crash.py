"""Property tests for the parsers without one elsewhere: round trips, and arbitrary input never raises
anything but the project's own errors (STYLE.md: every parser)."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust import config
from floodlight_trust.claims import (
    ClaimSet,
    EnclaveClaims,
    EvidenceType,
    ImaClaims,
    PlatformIdentity,
    SignatureStatus,
    TcbStatus,
    claimset_from_json,
    claimset_to_json,
)
from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence.collateral import collateral_from_json
from floodlight_trust.floodlight.keystore import FloodlightKeystore
from floodlight_trust.floodlight.properties import PropertiesFile
from floodlight_trust.secrets import Secret

hexes = lambda n: st.binary(min_size=n, max_size=n).map(bytes.hex)  # noqa: E731
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC)
)

enclaves = st.builds(
    EnclaveClaims,
    evidence_type=st.sampled_from(EvidenceType),
    mrenclave=hexes(32),
    mrsigner=hexes(32),
    isv_prod_id=st.integers(0, 0xFFFF),
    isv_svn=st.integers(0, 0xFFFF),
    debug=st.booleans(),
    mode64bit=st.booleans(),
    attributes=hexes(16),
    misc_select=st.integers(0, 2**32 - 1),
    config_svn=st.integers(0, 0xFFFF),
    config_id=hexes(64),
    isv_ext_prod_id=hexes(16),
    isv_family_id=hexes(16),
    report_data=hexes(64),
    tcb_status=st.sampled_from(TcbStatus),
    advisory_ids=st.lists(st.from_regex(r"INTEL-SA-[0-9]{5}", fullmatch=True), max_size=4).map(tuple),
    qe_identity_status=st.none() | st.sampled_from(TcbStatus),
    collateral_issued_at=times,
    platform=st.builds(
        PlatformIdentity,
        fmspc=st.none() | hexes(6),
        pce_id=st.none() | hexes(2),
        pck_certificate_sha256=st.none() | hexes(32),
        epid_group_id=st.none() | hexes(4),
        epid_pseudonym=st.none() | hexes(64),
    ),
    simulated=st.booleans(),
)

paths = st.text(alphabet=string.ascii_letters + string.digits + "/._- ", min_size=1, max_size=40)


@st.composite
def ima_claims(draw: st.DrawFn) -> ImaClaims:
    n = draw(st.integers(0, 8))
    first = draw(st.integers(0, 1000)) if n else 0
    algos = draw(st.lists(st.sampled_from(["sha1", "sha256", "sha512"]), min_size=n, max_size=n))
    return ImaClaims(
        templates=draw(st.lists(st.sampled_from(["ima-ng", "ima-sig", "d-ng|n-ng|sig"]), min_size=n, max_size=n)),
        paths=draw(st.lists(paths, min_size=n, max_size=n)),
        digest_algorithms=algos,
        digests=[draw(hexes({"sha1": 20, "sha256": 32, "sha512": 64}[a])) for a in algos],
        signatures=draw(st.lists(st.sampled_from(SignatureStatus), min_size=n, max_size=n)),
        signature_key_ids=draw(st.lists(st.none() | hexes(4), min_size=n, max_size=n)),
        violations=frozenset(draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else set()),
        first_index=first,
        boot_aggregate=draw(st.none() | hexes(32)),
        pcr_values=draw(st.dictionaries(st.sampled_from(["sha1", "sha256"]), hexes(32), max_size=2)),
    )


@settings(max_examples=150)
@given(enclave=st.none() | enclaves, ima=st.none() | ima_claims(), at=times, subject=st.none() | paths)
def test_claims_json_round_trip(
    enclave: EnclaveClaims | None, ima: ImaClaims | None, at: datetime, subject: str | None
) -> None:
    claims = ClaimSet(verified_at=at, ima=ima, enclave=enclave, subject=subject)
    back = claimset_from_json(claimset_to_json(claims))
    assert back.enclave == claims.enclave
    assert back.verified_at == claims.verified_at and back.subject == claims.subject
    if ima is None:
        assert back.ima is None
    else:
        assert back.ima is not None
        assert list(back.ima.entries()) == list(ima.entries())
        assert back.ima.first_index == ima.first_index
        assert back.ima.boot_aggregate == ima.boot_aggregate and dict(back.ima.pcr_values) == dict(ima.pcr_values)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150)
@given(doc=json_values)
def test_claims_json_of_any_shape_is_a_project_error_or_claims(doc: object) -> None:
    try:
        claimset_from_json(doc)
    except FtrustError:
        pass


@settings(max_examples=150)
@given(data=st.binary(max_size=300) | json_values.map(lambda v: __import__("json").dumps(v).encode()))
def test_collateral_json_never_crashes(data: bytes) -> None:
    try:
        collateral_from_json(data)
    except FtrustError:
        pass


props_text = st.text(alphabet=string.printable + "éü\u2603", max_size=300)


@settings(max_examples=200)
@given(text=props_text)
def test_properties_file_keeps_every_byte_it_does_not_change(text: str) -> None:
    props = PropertiesFile(text)
    assert props.text() == text


@settings(max_examples=200)
@given(
    text=props_text,
    key=st.from_regex(r"net\.floodlightcontroller\.restserver\.RestApiServer\.[a-zA-Z]{1,12}", fullmatch=True),
    value=st.text(alphabet=string.printable + "é", max_size=40),
)
def test_properties_set_then_get_round_trips_any_value(text: str, key: str, value: str) -> None:
    props = PropertiesFile(text)
    props.set(key, value)
    again = PropertiesFile(props.text())
    assert again.get(key) == value


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200))
def test_keystore_of_arbitrary_bytes_is_a_located_project_error(data: bytes, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path = Path(tmp_path_factory.mktemp("ks")) / "store.jks"
    path.write_bytes(data)
    try:
        FloodlightKeystore.load(path, Secret("changeit", "test"))
    except FtrustError as e:
        assert e.location is not None and e.location.file == str(path)


toml_text = st.text(alphabet=string.printable, max_size=200)


@settings(max_examples=150)
@given(text=toml_text)
def test_config_of_arbitrary_text_is_a_config_error_or_a_config(text: str) -> None:
    try:
        config.from_mapping(__import__("tomllib").loads(text), source="x.toml", text=text)
    except __import__("tomllib").TOMLDecodeError:
        pass  # config.load turns this into a located ConfigError (tests/foundation/test_config.py)
    except FtrustError:
        pass


def test_appending_after_a_dangling_continuation_keeps_the_keys_apart() -> None:
    # Found by the property test above: a file ending in "key=value\" (a continuation with nothing
    # after it) would have swallowed the appended key as part of the previous value.
    props = PropertiesFile("floodlight.modules=a,b\\")
    props.set("net.floodlightcontroller.restserver.RestApiServer.useHttps", "YES")
    assert props.get("floodlight.modules") == "a,b"
    assert props.get("net.floodlightcontroller.restserver.RestApiServer.useHttps") == "YES"
    assert (
        props.text() == "floodlight.modules=a,b\\\n\nnet.floodlightcontroller.restserver.RestApiServer.useHttps=YES\n"
    )


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"], ids=["CR", "CRLF", "LF"])
def test_a_dangling_continuation_is_ended_with_its_own_line_break(ending: str) -> None:
    # Found by the round-trip property: after "0\\" ended by a bare CR, the empty line ending the
    # continuation was an LF, which joined the CR into one CRLF break, and the appended key was read
    # as part of the previous value.
    key = "net.floodlightcontroller.restserver.RestApiServer.useHttps"
    props = PropertiesFile("0\\" + ending)
    props.set(key, "YES")
    assert props.text() == "0\\" + ending + ending + key + "=YES" + props.newline
    again = PropertiesFile(props.text())
    assert again.get(key) == "YES"
    assert again.get("0") == ""
