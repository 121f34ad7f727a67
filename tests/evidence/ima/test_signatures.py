"""IMA file signatures (v2 and v3 headers) verified against RSA and ECDSA certificates."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from floodlight_trust.claims import SignatureStatus
from floodlight_trust.evidence.ima import (
    FindingKind,
    appraise_measurement_list,
    key_ids,
    make_entry,
    parse_signature,
    serialize_binary,
)

ALGO_IDS = {"sha256": 4, "sha512": 6}


def certificate(key) -> x509.Certificate:  # type: ignore[no-untyped-def]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ima test key")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def sign(key, cert, digest: bytes, algo: str = "sha256", version: int = 2) -> bytes:  # type: ignore[no-untyped-def]
    halg = {"sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[algo]
    if version == 3:
        h = hashes.Hash(halg)
        h.update(bytes([3, ALGO_IDS[algo]]) + digest)
        digest = h.finalize()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(halg))
    else:
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(halg)))
    kid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest[-4:]
    return bytes([3, version, ALGO_IDS[algo]]) + kid + len(sig).to_bytes(2, "big") + sig


@pytest.fixture(scope="module")
def rsa_key():  # type: ignore[no-untyped-def]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, certificate(key)


@pytest.fixture(scope="module")
def ec_key():  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    return key, certificate(key)


@pytest.mark.parametrize("kind", ["rsa_key", "ec_key"])
@pytest.mark.parametrize("version", [2, 3])
def test_valid_signatures_verify(request, kind: str, version: int) -> None:  # type: ignore[no-untyped-def]
    key, cert = request.getfixturevalue(kind)
    digest = hashlib.sha256(b"binary").digest()
    sig = sign(key, cert, digest, version=version)
    hdr = parse_signature(sig)
    assert hdr.version == version and hdr.hash_algorithm == "sha256" and hdr.key_id in key_ids(cert)
    data = serialize_binary([make_entry("/usr/bin/app", digest, template="ima-sig", signature=sig)])
    a = appraise_measurement_list(data, keyring=[cert])
    assert list(a.claims.signatures) == [SignatureStatus.VALID]
    assert a.claims.signature_key_ids[0] == hdr.key_id
    unchecked = appraise_measurement_list(data)
    assert list(unchecked.claims.signatures) == [SignatureStatus.UNCHECKED]


def test_wrong_file_digest_is_invalid_and_a_finding(rsa_key) -> None:  # type: ignore[no-untyped-def]
    key, cert = rsa_key
    sig = sign(key, cert, hashlib.sha256(b"original").digest())
    data = serialize_binary(
        [make_entry("/usr/bin/app", hashlib.sha256(b"replaced").digest(), template="ima-sig", signature=sig)]
    )
    a = appraise_measurement_list(data, keyring=[cert], source="list")
    assert list(a.claims.signatures) == [SignatureStatus.INVALID]
    assert a.ok  # template hashes are fine: the policy judges signature status
    (f,) = a.findings
    assert f.kind is FindingKind.SIGNATURE_INVALID and "/usr/bin/app" in f.message and f.location.index == 0


def test_unknown_key_and_malformed_header(rsa_key, ec_key) -> None:  # type: ignore[no-untyped-def]
    key, cert = rsa_key
    digest = hashlib.sha256(b"x").digest()
    good = sign(key, cert, digest)
    es = [
        make_entry("/a", digest, template="ima-sig", signature=good),
        make_entry("/b", digest, template="ima-sig", signature=b"\x03\x02\x04"),
        make_entry("/c", digest, template="ima-sig"),
    ]
    a = appraise_measurement_list(serialize_binary(es), keyring=[ec_key[1]])
    assert list(a.claims.signatures) == [SignatureStatus.UNKNOWN_KEY, SignatureStatus.INVALID, SignatureStatus.NONE]
    assert "a v2/v3 header needs 9" in a.findings[0].message


def test_real_ima_sig_headers_parse(testdata) -> None:  # type: ignore[no-untyped-def]
    from floodlight_trust.evidence.ima import records_from_binary

    records = records_from_binary((testdata / "ima/ibmtss/sha1.log").read_bytes(), 20)
    sigs = [r.fields[2] for r in records if r.fields[2]]
    assert len(sigs) == 21
    headers = {parse_signature(s)[:4] for s in sigs}
    assert all(h[1] == 2 and h[2] in ("sha256", "sha1", "sha512") for h in headers)
