"""IMA file signatures (v2 and v3 headers) verified against RSA and ECDSA certificates."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def certificate(key, serial: int = 1) -> x509.Certificate:  # type: ignore[no-untyped-def]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ima test key")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def sign(key, cert, digest: bytes, algo: str = "sha256", version: int = 2, xattr_type: int = 3) -> bytes:  # type: ignore[no-untyped-def]
    halg = {"sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[algo]
    if version == 3:  # struct ima_file_id {type, algo, digest}, hashed with the digest's algorithm
        h = hashes.Hash(halg)
        h.update(bytes([xattr_type, ALGO_IDS[algo]]) + digest)
        digest = h.finalize()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(halg))
    else:
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(halg)))
    kid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest[-4:]
    return bytes([xattr_type, version, ALGO_IDS[algo]]) + kid + len(sig).to_bytes(2, "big") + sig


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


def test_v3_signs_the_kernels_ima_file_id() -> None:
    """calc_file_id_hash: {xattr type, kernel hash_algo enum, digest of its own length}, hashed with
    the file digest's algorithm (sha256 is enum 4, sha512 enum 6)."""
    from floodlight_trust.evidence.ima.signatures import file_id_digest

    d256, d512 = hashlib.sha256(b"f").digest(), hashlib.sha512(b"f").digest()
    assert file_id_digest(6, "sha256", d256) == hashlib.sha256(b"\x06\x04" + d256).digest()
    assert file_id_digest(3, "sha512", d512) == hashlib.sha512(b"\x03\x06" + d512).digest()


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_fs_verity_v3_signature_and_its_rules(rsa_key, algo: str) -> None:  # type: ignore[no-untyped-def]
    key, cert = rsa_key
    digest = getattr(hashlib, algo)(b"verity descriptor").digest()
    entries = [
        make_entry("/v3", digest, algo, template="ima-sig", signature=sign(key, cert, digest, algo, 3, xattr_type=6)),
        make_entry("/v2", digest, algo, template="ima-sig", signature=sign(key, cert, digest, algo, 2, xattr_type=6)),
        # signed as a type 3 v3 signature but labelled type 6: the file id differs, so it fails
        make_entry(
            "/relabelled", digest, algo, template="ima-sig", signature=b"\x06" + sign(key, cert, digest, algo, 3)[1:]
        ),
    ]
    a = appraise_measurement_list(serialize_binary(entries), keyring=[cert])
    assert list(a.claims.signatures) == [SignatureStatus.VALID, SignatureStatus.INVALID, SignatureStatus.INVALID]
    assert "fs-verity signature (type 6) must be version 3" in a.findings[0].message


def test_signature_algorithm_must_match_the_file_digest(rsa_key) -> None:  # type: ignore[no-untyped-def]
    key, cert = rsa_key
    d512 = hashlib.sha512(b"f").digest()
    sig = sign(key, cert, d512, "sha512", 3)
    d256 = hashlib.sha256(b"f").digest()
    a = appraise_measurement_list(
        serialize_binary([make_entry("/f", d256, template="ima-sig", signature=sig)]), keyring=[cert]
    )
    assert list(a.claims.signatures) == [SignatureStatus.INVALID]
    assert "v3 signature uses sha512, the file digest is sha256" in a.findings[0].message


# --- ima-modsig: appended PKCS#7 signatures ---------------------------------------------------


def modsig_entry(path: str, content: bytes, signature: bytes, d_modsig: bytes | None = None):  # type: ignore[no-untyped-def]
    from floodlight_trust.evidence.ima.templates import ImaRecord, digest_field

    file_digest = hashlib.sha256(content + signature).digest()
    fields = (
        digest_field("sha256", file_digest),
        path.encode() + b"\0",
        b"",
        digest_field("sha256", d_modsig if d_modsig is not None else hashlib.sha256(content).digest()),
        signature,
    )
    return ImaRecord(10, "ima-modsig", fields)


def pkcs7(key, cert, content: bytes, attributes: bool) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7 as p7

    options = [p7.PKCS7Options.DetachedSignature, p7.PKCS7Options.NoCerts]
    if not attributes:
        options.append(p7.PKCS7Options.NoAttributes)  # as the kernel's sign-file does
    builder = p7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, options)


@pytest.mark.parametrize("kind", ["rsa_key", "ec_key"])
@pytest.mark.parametrize("attributes", [False, True])
def test_appended_signatures_verify(request, kind: str, attributes: bool) -> None:  # type: ignore[no-untyped-def]
    from floodlight_trust.evidence.ima.signatures import parse_module_signature

    key, cert = request.getfixturevalue(kind)
    content = b"\x7fELF kernel module " * 50
    sig = pkcs7(key, cert, content, attributes)
    m = parse_module_signature(sig)
    assert m.digest_algorithm == "sha256" and m.serial == 1 and "CN=ima test key" in m.signer
    assert (m.message_digest == hashlib.sha256(content).digest()) is attributes
    entries = [
        modsig_entry("/lib/modules/good.ko", content, sig),
        modsig_entry("/lib/modules/other.ko", content, sig, d_modsig=hashlib.sha256(b"other").digest()),
    ]
    a = appraise_measurement_list(serialize_binary(entries), keyring=[cert], source="list")
    assert list(a.claims.signatures) == [SignatureStatus.VALID, SignatureStatus.INVALID]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert a.claims.signature_key_ids[0] == ski[-4:].hex()  # the id `require signature ... by KEY` matches
    (f,) = a.findings
    assert f.kind is FindingKind.SIGNATURE_INVALID and "other.ko" in f.message and f.location.index == 1
    elsewhere = appraise_measurement_list(serialize_binary(entries[:1]), keyring=[certificate(key, serial=2)])
    assert list(elsewhere.claims.signatures) == [SignatureStatus.UNKNOWN_KEY]  # the signer names serial 1
    unchecked = appraise_measurement_list(serialize_binary(entries[:1]))
    assert list(unchecked.claims.signatures) == [SignatureStatus.UNCHECKED]
    assert unchecked.claims.signature_key_ids[0] == "issuer=CN=ima test key, serial=1"


def test_malformed_appended_signature_is_invalid() -> None:
    entry = modsig_entry("/m.ko", b"x", b"\x30\x82\xff\xff\x06")
    a = appraise_measurement_list(serialize_binary([entry]))
    assert list(a.claims.signatures) == [SignatureStatus.INVALID]
    assert "appended signature: DER element at offset 0" in a.findings[0].message


def test_real_modsig_and_evmsig_entries_parse(testdata, ec_key) -> None:  # type: ignore[no-untyped-def]
    """imatest.log's appended signature (vmlinuz) and EVM portable signature: their keys are not
    published, so they are identified and reported as unchecked / unknown key, never as valid."""
    from floodlight_trust.evidence.ima import records_from_binary
    from floodlight_trust.evidence.ima.signatures import parse_module_signature

    data = (testdata / "ima/ibmtss/imatest.log").read_bytes()
    records = records_from_binary(data, 20)
    (modsig,) = [r.fields[4] for r in records if r.template == "ima-modsig" and r.fields[4]]
    m = parse_module_signature(modsig)
    assert (m.digest_algorithm, m.serial, m.authenticated_attributes) == (
        "sha256",
        0x250B78A054442C431874FD0A7339E6F67BD3AB83,
        None,
    )
    assert m.signer == "issuer=CN=Subject, serial=250b78a054442c431874fd0a7339e6f67bd3ab83" and len(m.signature) == 256
    (evm,) = [r for r in records if r.template == "evm-sig"]
    hdr = parse_signature(evm.fields[2])
    assert (hdr.xattr_type, hdr.version, hdr.hash_algorithm, hdr.key_id) == (5, 2, "sha256", "78511c2a")
    a = appraise_measurement_list(data)
    by_template = {e.template: (e.signature, e.signature_key_id) for e in a.claims.entries() if e.signature_key_id}
    assert by_template["evm-sig"] == (SignatureStatus.UNCHECKED, "78511c2a")
    assert by_template["ima-modsig"] == (SignatureStatus.UNCHECKED, m.signer)
    keyed = appraise_measurement_list(data, keyring=[ec_key[1]])
    statuses = {e.template: e.signature for e in keyed.claims.entries() if e.signature_key_id}
    assert statuses["evm-sig"] is statuses["ima-modsig"] is SignatureStatus.UNKNOWN_KEY


# --- evm-sig: EVM portable signatures ------------------------------------------------------------


def test_evm_portable_signature_verifies(rsa_key) -> None:  # type: ignore[no-untyped-def]
    from floodlight_trust.evidence.ima.signatures import evm_portable_digest
    from floodlight_trust.evidence.ima.templates import ImaRecord, digest_field

    key, cert = rsa_key
    selinux = b"system_u:object_r:bin_t:s0\0"
    ima = b"\x04\x04" + hashlib.sha256(b"file").digest()
    values = selinux + ima
    uid, gid, mode = 0, 0, 0o100755
    evm_digest = evm_portable_digest("sha256", values, uid, gid, mode)
    # the kernel's struct h_misc on 64-bit: ino (8, zero), generation (4, zero), uid, gid, mode, padding
    assert (
        evm_digest
        == hashlib.sha256(values + bytes(12) + b"\0" * 8 + (0o100755).to_bytes(2, "little") + bytes(2)).digest()
    )
    sig = sign(key, cert, evm_digest, xattr_type=5)

    def entry(mode_: int, evmsig: bytes = sig) -> ImaRecord:
        fields = (
            digest_field("sha256", hashlib.sha256(b"file").digest()),
            b"/usr/bin/tool\0",
            evmsig,
            b"security.selinux|security.ima\0",
            len(selinux).to_bytes(4, "little") + len(ima).to_bytes(4, "little"),
            values,
            uid.to_bytes(4, "little"),
            gid.to_bytes(4, "little"),
            mode_.to_bytes(2, "little"),
        )
        return ImaRecord(10, "evm-sig", fields)

    immutable = b"\x03" + sig[1:]  # a non-portable EVM signature covers the inode number
    entries = [entry(mode), entry(0o104755), entry(mode, immutable)]
    a = appraise_measurement_list(serialize_binary(entries), keyring=[cert])
    assert list(a.claims.signatures) == [SignatureStatus.VALID, SignatureStatus.INVALID, SignatureStatus.UNCHECKED]
    assert [f.location.index for f in a.findings] == [1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_appended_signatures_never_raise(rsa_key, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    from floodlight_trust.evidence.ima.signatures import Keyring

    key, cert = rsa_key
    raw = bytearray(pkcs7(key, cert, b"module", data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    status, _, reason, _ = Keyring([cert]).verify_modsig(bytes(raw), "sha256", hashlib.sha256(b"module").digest())
    assert status in (SignatureStatus.VALID, SignatureStatus.INVALID, SignatureStatus.UNKNOWN_KEY) and reason
