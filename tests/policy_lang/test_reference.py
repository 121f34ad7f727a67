"""Reference lists: sha256sum files, Keylime runtime policies (schema, DSSE), generation."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import PolicyError
from floodlight_trust.policy_files import FILES
from policy_lang import compile_policy_text
from policy_lang.reference import (
    as_set,
    generate_reference_list,
    keylime_schema,
    parse_keylime,
    parse_keylime_envelope,
    parse_sha256sum,
    verify_dsse_envelope,
)

from .helpers import AT, d, host_claims, ima


@pytest.fixture
def keylime(testdata: Path) -> Path:
    return testdata / "ima" / "keylime"


def test_schema_is_keylimes(keylime: Path) -> None:
    ours = dict(keylime_schema())
    ours.pop("$comment")
    assert ours == json.loads((keylime / "runtime_policy_schema.json").read_text())


def test_valid_keylime_policy(keylime: Path) -> None:
    ref = parse_keylime((keylime / "sign-runtime-policy" / "runtime-policy.json").read_text(), "rp.json")
    assert len(ref) == 7
    assert as_set(ref.digests["/usr/bin/foobar-bin"]) == {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    }


def test_keylime_policy_with_prefixed_digest_fails_schema(keylime: Path) -> None:
    with pytest.raises(PolicyError) as info:
        parse_keylime((keylime / "runtime-policy-test.json").read_text(), "rp.json")
    assert str(info.value).startswith(
        "rp.json:1:130: Keylime runtime policy fails the schema at ['digests']['boot_aggregate'][0]"
    )


def test_signed_keylime_envelopes(keylime: Path) -> None:
    key = (keylime / "runtime-policy-pubkey.pub").read_bytes()
    good = (keylime / "runtime-policy-test-signed.json").read_text()
    payload = verify_dsse_envelope(good, key, "good.json", "key.pub")
    assert json.loads(payload)["meta"]["version"] == 1
    # The good envelope verifies; its payload is the sha256:-prefixed policy, which fails the schema.
    with pytest.raises(PolicyError, match=r"fails the schema at \['digests'\]\['boot_aggregate'\]"):
        parse_keylime_envelope(good, key, "good.json", "key.pub")
    bad = (keylime / "runtime-policy-test-signed-bad.json").read_text()
    with pytest.raises(PolicyError) as info:
        verify_dsse_envelope(bad, key, "bad.json", "key.pub")
    assert str(info.value) == "bad.json: DSSE signature does not verify with the key in key.pub (1 signature(s) tried)"
    with pytest.raises(PolicyError, match="signed DSSE envelope"):
        parse_keylime(good, "good.json")


def _envelope(payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    ptype = "application/vnd.keylime+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(payload), payload)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": ptype,
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
        }
    )


def test_signed_policy_included_by_a_host_policy(keylime: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = (keylime / "sign-runtime-policy" / "runtime-policy.json").read_bytes()
    (tmp_path / "rp.signed.json").write_text(_envelope(payload, key))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "rp.pub").write_bytes(pem)
    text = 'host h {\n    include keylime "rp.signed.json" verify_with "rp.pub"\n}\n'
    policy = compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert policy.evaluate_host("h", host_claims([("/usr/bin/foobar-bin", empty)])).allowed
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "rp.signed.json").write_text(_envelope(payload, other))
    with pytest.raises(PolicyError, match="DSSE signature does not verify"):
        compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)


def test_keylime_excludes_become_exclude_regexes(tmp_path: Path) -> None:
    doc = {
        "meta": {"version": 1, "generator": 3},
        "release": 0,
        "digests": {"/bin/a": [d(1)]},
        "excludes": ["/proc/.*"],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }
    (tmp_path / "rp.json").write_text(json.dumps(doc))
    policy = compile_policy_text('host h {\n    include keylime "rp.json"\n}\n', base_dir=tmp_path, sources=FILES)
    assert policy.evaluate_host("h", host_claims([("/bin/a", d(1)), ("/proc/1/x", d(2))])).allowed


def _keylime_doc(**ima: Any) -> dict[str, Any]:
    return {
        "meta": {"version": 1, "generator": 3},
        "release": 0,
        "digests": {},
        "excludes": [".*"],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None, **ima},
        "ima-buf": {},
        "verification-keys": "",
    }


def test_keylime_log_hash_alg_is_honoured(testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ima.log_hash_alg says which template-hash algorithm the list uses: a sha1 list (the real
    ibmtss list) passes a sha1 policy and is refused by a sha256 one, naming the field."""
    from floodlight_trust.claims import ClaimSet
    from floodlight_trust.evidence.ima import appraise_measurement_list

    claims = ClaimSet(
        verified_at=AT, ima=appraise_measurement_list((testdata / "ima/ibmtss/sha1.log").read_bytes()).claims
    )
    assert claims.ima is not None and claims.ima.log_hash_algorithm == "sha1"
    monkeypatch.chdir(tmp_path)
    for alg, allowed in (("sha1", True), ("sha256", False)):
        text = json.dumps(_keylime_doc(log_hash_alg=alg), indent=1)
        line = 1 + text.split("\n").index(next(x for x in text.split("\n") if '"log_hash_alg"' in x))
        (tmp_path / "rp.json").write_text(text)
        policy = compile_policy_text(
            'host h {\n    include keylime "rp.json"\n}\n', filename="p.policy", base_dir=tmp_path, sources=FILES
        )
        decision = policy.evaluate_host("h", claims)
        assert decision.allowed is allowed
        if not allowed:
            (reason,) = decision.failures
            assert (reason.rule, reason.location) == ("log_hash_alg", "p.policy:2")
            assert reason.message == (
                f"the list's template hashes are sha1; the Keylime runtime policy (rp.json:{line}) says ima.log_hash_alg sha256"
            )
    # Claims that do not say (hand-written) are refused too: fail closed.
    unknown = host_claims([("/bin/a", d(1))], log_hash_algorithm=None)
    assert "of an unknown algorithm" in policy.evaluate_host("h", unknown).failures[0].message


def test_keylime_verification_keys_and_dm_policy_are_refused_by_name(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    ring = json.dumps({"pubkeys": [base64.b64encode(key).decode()], "keyids": [0x1A2B3C4D]})
    doc = _keylime_doc()
    doc["verification-keys"] = json.dumps({"ima": ring})  # Keylime's ImaKeyrings string form
    with pytest.raises(PolicyError) as info:
        parse_keylime(json.dumps(doc, indent=1), "rp.json")
    assert str(info.value) == (
        "rp.json:18: Keylime runtime policy verification-keys holds 1 IMA signature key(s) (key ids 1a2b3c4d): "
        "floodlight-trust does not take signature keys from a runtime policy"
    )
    assert info.value.hint is not None and "require signature" in info.value.hint
    doc["verification-keys"] = "not json"
    with pytest.raises(PolicyError, match="verification-keys is not Keylime's keyrings form"):
        parse_keylime(json.dumps(doc), "rp.json")
    doc["verification-keys"] = ""
    parse_keylime(json.dumps(doc), "rp.json")  # empty: nothing to apply
    doc["ima"]["dm_policy"] = {"rules": []}
    with pytest.raises(PolicyError, match=r"fails the schema at \['ima'\]\['dm_policy'\]: .* is not of type 'null'"):
        parse_keylime(json.dumps(doc), "rp.json")


def test_sha256sum_format_details() -> None:
    text = f"# comment\n\n{d(1)}  /a b\n{d(1).upper()[:-1]}2 */bin\n\\{d(3)}  /new\\nline\n{d(4)}  /a b\n"
    ref = parse_sha256sum(text, "r")
    assert {p: as_set(v) for p, v in ref.digests.items()} == {
        "/a b": {d(1), d(4)},
        "/bin": {d(2)},
        "/new\nline": {d(3)},
    }
    with pytest.raises(PolicyError, match=r"^r:2:1: malformed reference list line: 'zz"):
        parse_sha256sum(f"{d(1)}  /a\n{'z' * 64}  /b\n", "r")


def test_generate_skips_violations_and_sorts() -> None:
    claims = ima([("/b", d(2)), ("/a", d(1)), ("/x", "0" * 64), ("/a", d(1))], violations=frozenset({2}))
    assert generate_reference_list(claims) == f"{d(1)}  /a\n{d(2)}  /b\n"


paths = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(paths, st.integers(1, 2**64)), max_size=20))
def test_generate_then_parse_round_trips(rows: list[tuple[str, int]]) -> None:
    claims = ima([(p, d(n)) for p, n in rows])
    ref = parse_sha256sum(generate_reference_list(claims), "gen")
    expected: dict[str, set[str]] = {}
    for p, n in rows:
        expected.setdefault(p, set()).add(d(n))
    assert {p: as_set(v) for p, v in ref.digests.items()} == expected


def test_plain_and_general_parsers_agree() -> None:
    plain = "".join(f"{d(i)}  /usr/lib/f{i}\n" for i in range(50))
    fast = parse_sha256sum(plain, "r").digests
    slow = parse_sha256sum("# header\n" + plain, "r").digests
    assert fast == slow and len(fast) == 50


def test_keylime_keyrings_are_enforced_on_keyring_measurements(tmp_path: Path) -> None:
    doc = {
        "meta": {"version": 1, "generator": 3},
        "release": 0,
        "digests": {"/bin/a": [d(1)]},
        "excludes": [],
        "keyrings": {".ima": [d(7)]},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }
    (tmp_path / "rp.json").write_text(json.dumps(doc))
    policy = compile_policy_text('host h {\n    include keylime "rp.json"\n}\n', base_dir=tmp_path, sources=FILES)
    # A key loaded onto .ima is measured as an ima-buf entry named after the keyring.
    assert policy.evaluate_host("h", host_claims([(".ima", d(7))], template="ima-buf")).allowed
    denied = policy.evaluate_host("h", host_claims([(".ima", d(8))], template="ima-buf"))
    assert [r.message for r in denied.failures] == [
        f"measured buffer .ima has digest sha256:{d(8)}, expected one of {{{d(7)}}}"
    ]
    other = policy.evaluate_host("h", host_claims([(".evm", d(7))], template="ima-buf"))
    assert [r.message for r in other.failures] == [
        f"unknown measured buffer .evm (sha256:{d(7)}) is not in the allowlist"
    ]

    # ignored_keyrings: the named keyring (or, with "*", every keyring name) is not appraised.
    for ignored, allowed in ((["*"], True), ([".evm"], True), ([".ima"], False)):
        doc["ima"] = {"ignored_keyrings": ignored, "log_hash_alg": "sha1", "dm_policy": None}
        (tmp_path / "rp.json").write_text(json.dumps(doc))
        policy = compile_policy_text('host h {\n    include keylime "rp.json"\n}\n', base_dir=tmp_path, sources=FILES)
        claims = host_claims([(".ima", d(7)), (".evm", d(9))], template="ima-buf")
        decision = policy.evaluate_host("h", claims)
        assert (decision.allowed, ignored) == (allowed, ignored)
        assert not policy.evaluate_host("h", host_claims([("kexec-cmdline", d(9))], template="ima-buf")).allowed
