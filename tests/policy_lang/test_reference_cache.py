"""The compiled-reference cache: an unchanged list is not parsed again; anything the result
depends on (content, format, names, verification key) is part of the key; failures are never kept."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.errors import PolicyError
from floodlight_trust.policy_files import FILES, load_policy
from policy_lang import compile_policy_text, reference
from policy_lang.reference import compiled_reference

from .helpers import d, host_claims


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    reference.clear_cache()
    yield
    reference.clear_cache()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every real parse (cache misses) by format and source."""
    calls: list[str] = []
    for name in ("parse_sha256sum", "parse_keylime", "parse_keylime_envelope"):
        real = getattr(reference, name)

        def spy(*args: object, _real=real, _name=name) -> object:
            calls.append(f"{_name}:{args[-1] if _name != 'parse_keylime_envelope' else args[2]}")
            return _real(*args)

        monkeypatch.setattr(reference, name, spy)
    return calls


def _keylime_doc(digests: dict[str, list[str]]) -> str:
    return json.dumps(
        {
            "meta": {"version": 1, "generator": 3},
            "release": 0,
            "digests": digests,
            "excludes": [],
            "keyrings": {},
            "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
            "ima-buf": {},
            "verification-keys": "",
        }
    )


def test_unchanged_list_is_parsed_once_and_judges_the_same(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "ref.sha256sum").write_text(f"{d(1)}  /bin/a\n{d(2)}  /bin/b\n")
    (tmp_path / "p.policy").write_text('host h {\n    include sha256sum "ref.sha256sum"\n}\n')
    first = load_policy(tmp_path / "p.policy")
    second = load_policy(tmp_path / "p.policy")
    assert len(parses) == 1
    assert first.version == second.version
    good, bad = host_claims([("/bin/a", d(1))]), host_claims([("/bin/a", d(2))])
    for policy in (first, second):
        assert policy.evaluate_host("h", good).allowed
        assert not policy.evaluate_host("h", bad).allowed


def test_changed_content_under_the_same_name_is_parsed_again(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "ref.sha256sum").write_text(f"{d(1)}  /bin/a\n")
    (tmp_path / "p.policy").write_text('host h {\n    include sha256sum "ref.sha256sum"\n}\n')
    old = load_policy(tmp_path / "p.policy")
    (tmp_path / "ref.sha256sum").write_text(f"{d(2)}  /bin/a\n")
    new = load_policy(tmp_path / "p.policy")
    assert len(parses) == 2 and old.version != new.version
    assert new.evaluate_host("h", host_claims([("/bin/a", d(2))])).allowed
    assert not new.evaluate_host("h", host_claims([("/bin/a", d(1))])).allowed
    assert old.evaluate_host("h", host_claims([("/bin/a", d(1))])).allowed  # the old policy is untouched


def test_same_content_under_another_name_or_format_is_its_own_entry(parses: list[str]) -> None:
    text = f"{d(1)}  /bin/a\n".encode()
    a = compiled_reference("sha256sum", text, "a.sha256sum")
    b = compiled_reference("sha256sum", text, "b.sha256sum")
    assert (a.source, b.source) == ("a.sha256sum", "b.sha256sum")
    assert compiled_reference("sha256sum", text, "a.sha256sum") is a
    with pytest.raises(PolicyError, match="not valid JSON"):  # same bytes, another format: parsed as that
        compiled_reference("keylime", text, "a.sha256sum")
    assert parses == ["parse_sha256sum:a.sha256sum", "parse_sha256sum:b.sha256sum", "parse_keylime:a.sha256sum"]


def test_failures_are_not_cached(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "ref.sha256sum").write_text("not a digest line\n")
    (tmp_path / "p.policy").write_text('host h {\n    include sha256sum "ref.sha256sum"\n}\n')
    for _ in range(2):
        with pytest.raises(PolicyError, match="malformed reference list line"):
            load_policy(tmp_path / "p.policy")
    assert len(parses) == 2
    (tmp_path / "ref.sha256sum").write_text(f"{d(1)}  /bin/a\n")
    assert load_policy(tmp_path / "p.policy").evaluate_host("h", host_claims([("/bin/a", d(1))])).allowed


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


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_signed_policy_is_verified_again_with_another_key(tmp_path: Path, parses: list[str]) -> None:
    signer, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "rp.signed.json").write_text(_envelope(_keylime_doc({"/bin/a": [d(1)]}).encode(), signer))
    (tmp_path / "rp.pub").write_bytes(_pem(signer))
    text = 'host h {\n    include keylime "rp.signed.json" verify_with "rp.pub"\n}\n'
    policy = compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    assert policy.evaluate_host("h", host_claims([("/bin/a", d(1))])).allowed
    compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    assert len(parses) == 1
    # The same envelope (cached as verified) under a key that did not sign it: verified again, refused.
    (tmp_path / "rp.pub").write_bytes(_pem(other))
    with pytest.raises(PolicyError, match="DSSE signature does not verify"):
        compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    assert len(parses) == 2


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "_CACHE_MAX_LISTS", 2)
    lists = [compiled_reference("sha256sum", f"{d(i)}  /bin/{i}\n".encode(), f"r{i}") for i in range(3)]
    assert compiled_reference("sha256sum", f"{d(2)}  /bin/2\n".encode(), "r2") is lists[2]
    assert compiled_reference("sha256sum", f"{d(0)}  /bin/0\n".encode(), "r0") is not lists[0]  # evicted


def test_keylime_policy_of_the_same_content_hits(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "rp.json").write_text(_keylime_doc({"/bin/a": [d(1)], "/bin/b": [d(2), d(3)]}))
    text = 'host h {\n    include keylime "rp.json"\n}\n'
    p1 = compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    p2 = compile_policy_text(text, filename="p.policy", base_dir=tmp_path, sources=FILES)
    assert len(parses) == 1 and parses[0].startswith("parse_keylime:")
    claims = host_claims([("/bin/a", d(1)), ("/bin/b", d(3))])
    assert p1.evaluate_host("h", claims).allowed and p2.evaluate_host("h", claims).allowed
