"""The project's IMA signature verification on real signed lists (tests/data/ima-sig, see its
PROVENANCE.md): IBM ACS's binary ``ima-sig`` log with its signing certificate, and Keylime's
unit-test entries signed with RSA, secp256k1 and DSA keys. Every entry is checked against the
per-entry expected results (``expected*.DERIVED.jsonl``), and the summary PROVENANCE.md states is
read from it and checked too."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from floodlight_trust.claims import SignatureStatus
from floodlight_trust.errors import InputError
from floodlight_trust.evidence.ima import FindingKind, ImaAppraisal, appraise_measurement_list
from floodlight_trust.evidence.verify import load_keyring
from tests.support.cli import ftrust

DATA = Path(__file__).resolve().parents[2] / "data" / "ima-sig"
ACS = DATA / "kgoldman-acs"
KEYLIME = DATA / "keylime"
PROVENANCE = (DATA / "PROVENANCE.md").read_text()

# the expected files' `result` -> the project's signature status
STATUS = {
    "VERIFIED": SignatureStatus.VALID,
    "FAIL (key present, bad signature)": SignatureStatus.INVALID,
    "no-key": SignatureStatus.UNKNOWN_KEY,
    "bad-length": SignatureStatus.INVALID,
    "no-signature": SignatureStatus.NONE,
}
# ... and the finding an invalid one must give
FINDING = {
    "FAIL (key present, bad signature)": FindingKind.SIGNATURE_INVALID,
    "bad-length": FindingKind.SIGNATURE_MALFORMED,
}


def expected(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    return rows


def keys(*names: str) -> list[Any]:
    return [k for n in names for k in load_keyring((KEYLIME / n).read_bytes(), n)]


def assert_entry_by_entry(a: ImaAppraisal, rows: list[dict[str, Any]]) -> None:
    """Each entry's path, signature status, key id and findings are the expected ones."""
    assert a.entry_count == len(rows)
    by_index: dict[int, set[FindingKind]] = {}
    for f in a.findings:
        assert f.location.index is not None
        by_index.setdefault(f.location.index, set()).add(f.kind)
    for row, entry in zip(rows, a.claims.entries(), strict=True):
        i, result = row["index"], row["result"]
        assert entry.path == row["path"], i
        assert entry.signature is STATUS[result], (i, row["path"], result, entry.signature)
        if result != "no-signature":
            assert a.claims.signature_key_ids[i] == row["keyid"], (i, row["path"])
        else:
            assert a.claims.signature_key_ids[i] is None
        kinds = by_index.get(i, set())
        assert (FindingKind.TEMPLATE_HASH_MISMATCH in kinds) is (not row["template_hash_ok"]), (i, row["path"])
        want = {FINDING[result]} if result in FINDING else set()
        assert kinds - {FindingKind.TEMPLATE_HASH_MISMATCH} == want, (i, row["path"], kinds)


@pytest.mark.parametrize("log", ["imasig.log", "ascii_runtime_measurements.DERIVED.txt"])
def test_acs_log_entry_by_entry(log: str) -> None:
    cert = x509.load_der_x509_certificate((ACS / "imakey.der").read_bytes())
    a = appraise_measurement_list((ACS / log).read_bytes(), keyring=[cert], source=log)
    rows = expected(ACS / "expected.DERIVED.jsonl")
    assert_entry_by_entry(a, rows)
    assert not a.ok  # the edited entry fails the log-integrity check
    (problem,) = [f for f in a.findings if f.kind is FindingKind.TEMPLATE_HASH_MISMATCH]
    assert a.first_problem() == problem and "/usr/bin/xautt" in problem.message
    bad = next(f for f in a.findings if f.kind is FindingKind.SIGNATURE_INVALID)
    assert "does not verify with key 0beb6a13 (RSA-1024, sha256)" in bad.message


def test_acs_summary_is_what_provenance_states() -> None:
    """The figures of PROVENANCE.md section 1, read from its text, hold for the project's verifier."""
    cert = x509.load_der_x509_certificate((ACS / "imakey.der").read_bytes())
    a = appraise_measurement_list((ACS / "imasig.log").read_bytes(), keyring=[cert])
    section = PROVENANCE.split("## 1.")[1].split("## 2.")[0]
    total, signed = map(int, re.search(r"\((\d+) entries, (\d+) of them signed", section).groups())  # type: ignore[union-attr]
    unsigned = int(re.search(r"\* (\d+) entries have no signature", section).group(1))  # type: ignore[union-attr]
    verified = int(re.search(r"\*\*(\d+) entries have keyid `0beb6a13`", section).group(1))  # type: ignore[union-attr]
    pcr = re.search(r"PCR-10 \(SHA-1\) replayed .*?`([0-9a-f]{40})`", section).group(1)  # type: ignore[union-attr]
    assert (total, signed, unsigned, verified) == (1083, 899, 184, 895)  # the text was read as meant
    sigs = Counter(a.claims.signatures)
    assert a.entry_count == total and sigs[SignatureStatus.NONE] == unsigned == total - signed
    mismatched = {f.location.index for f in a.findings if f.kind is FindingKind.TEMPLATE_HASH_MISMATCH}
    assert mismatched == {1079}  # "1079 /usr/bin/xautt ... the template hash does not match"
    intact_verified = [
        i for i, s in enumerate(a.claims.signatures) if s is SignatureStatus.VALID and i not in mismatched
    ]
    assert len(intact_verified) == verified
    assert all(a.claims.signature_key_ids[i] == "0beb6a13" for i in intact_verified)
    assert a.claims.signatures[1079] is SignatureStatus.VALID  # its signature verifies; its hash does not
    assert a.claims.signatures[1082] is SignatureStatus.INVALID and a.claims.paths[1082] == "/usr/bin/trojan_badsig"
    for i, path, kid in ((1081, "/usr/bin/trojan_badkey", "fec3e51d"), (591, "/usr/sbin/atd", "e0e85409")):
        assert a.claims.paths[i] == path and f"{path}`: keyid `{kid}`" in section.replace(f"{i} `", "`")
        assert (a.claims.signatures[i], a.claims.signature_key_ids[i]) == (SignatureStatus.UNKNOWN_KEY, kid)
    assert a.claims.paths[1080] == "/usr/bin/trojan_nosig" and a.claims.signatures[1080] is SignatureStatus.NONE
    assert sigs[SignatureStatus.VALID] == verified + 1 and sigs[SignatureStatus.UNKNOWN_KEY] == 2
    assert a.claims.pcr_values["sha1"] == pcr


def test_acs_without_a_keyring_checks_nothing() -> None:
    a = appraise_measurement_list((ACS / "imasig.log").read_bytes())
    assert Counter(a.claims.signatures) == {SignatureStatus.UNCHECKED: 899, SignatureStatus.NONE: 184}
    assert not any(f.kind.value.startswith("signature") for f in a.findings)


def test_acs_cli_verify_with_the_real_certificate() -> None:
    r = ftrust("ima", "verify", ACS / "imasig.log", "--json", "--keyring", ACS / "imakey.der")
    assert r.returncode == 1, r.stderr  # the edited entry: a template hash mismatch
    assert "template hash mismatch for '/usr/bin/xautt'" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    counts = Counter(row["result"] for row in expected(ACS / "expected.DERIVED.jsonl"))
    assert doc["signatures"] == {
        "valid": counts["VERIFIED"],
        "none": counts["no-signature"],
        "unknown-key": counts["no-key"],
        "invalid": counts["FAIL (key present, bad signature)"],
    }
    assert doc["entries"] == 1083 and doc["ok"] is False


KEYLIME_KEYS = ("rsa2048pub.pem", "secp256k1-pub.DERIVED.pem", "dsa-pub.DERIVED.pem")
KEYLIME_LISTS = ["head-SIGNATURES", "b71f6ebf-SIGNATURES-sha1", "head-BAD_SIGNATURES", "head-MEASUREMENTS"]


@pytest.mark.parametrize("name", KEYLIME_LISTS)
def test_keylime_lists_entry_by_entry(name: str) -> None:
    """RSA, secp256k1 and DSA signatures verify with Keylime's public keys (a keyring of bare
    SubjectPublicKeyInfo PEM files); the length-corrupted header is malformed, not verified."""
    a = appraise_measurement_list((KEYLIME / f"{name}.DERIVED.txt").read_bytes(), keyring=keys(*KEYLIME_KEYS))
    rows = expected(KEYLIME / f"expected-{name}.DERIVED.jsonl")
    assert_entry_by_entry(a, rows)
    for f in a.findings:
        if f.kind is FindingKind.SIGNATURE_MALFORMED:
            assert "signature header says 18432 bytes, the field holds 72" in f.message


def test_keylime_key_ids_are_provenances() -> None:
    ids = {
        n: re.search(rf"`{re.escape(n)}` \|.*keyid `([0-9a-f]{{8}})`", PROVENANCE).group(1)  # type: ignore[union-attr]
        for n in KEYLIME_KEYS
    }
    a = appraise_measurement_list(
        (KEYLIME / "b71f6ebf-SIGNATURES-sha1.DERIVED.txt").read_bytes(), keyring=keys(*KEYLIME_KEYS)
    )
    assert list(a.claims.signature_key_ids) == [ids[n] for n in KEYLIME_KEYS]  # dd: RSA, zmore: EC, zless: DSA


def test_each_keylime_key_verifies_only_its_own_entries() -> None:
    data = (KEYLIME / "b71f6ebf-SIGNATURES-sha1.DERIVED.txt").read_bytes()
    for k, name in enumerate(KEYLIME_KEYS):
        a = appraise_measurement_list(data, keyring=keys(name))
        want = [SignatureStatus.UNKNOWN_KEY] * 3
        want[k] = SignatureStatus.VALID
        assert list(a.claims.signatures) == want, name


def test_the_ima_keyring_certificate_verifies_nothing() -> None:
    """The `.ima` keyring certificate from head-KEYRINGS (keyid 2cb6058c) signs none of the entries."""
    ring = keys("head-KEYRINGS-ima-keyring-cert.DERIVED.der")
    for name in ("head-SIGNATURES", "b71f6ebf-SIGNATURES-sha1"):
        a = appraise_measurement_list((KEYLIME / f"{name}.DERIVED.txt").read_bytes(), keyring=ring)
        assert set(a.claims.signatures) == {SignatureStatus.UNKNOWN_KEY}
    keyrings = appraise_measurement_list((KEYLIME / "head-KEYRINGS.DERIVED.txt").read_bytes(), keyring=ring)
    assert keyrings.ok and list(keyrings.claims.paths) == [".ima"] and keyrings.claims.templates[0] == "ima-buf"


def test_an_unsupported_key_type_is_a_typed_finding() -> None:
    """An Ed25519 certificate whose key id is the one the zmore signature names: the signature is
    not valid, with a SIGNATURE_UNSUPPORTED finding naming the key type (no exception)."""
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519 key")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier(bytes(16) + bytes.fromhex("531f4025")), critical=False)
        .sign(key, None)
    )
    a = appraise_measurement_list((KEYLIME / "head-SIGNATURES.DERIVED.txt").read_bytes(), keyring=[cert])
    assert list(a.claims.signatures) == [SignatureStatus.UNKNOWN_KEY, SignatureStatus.INVALID]
    (f,) = a.findings
    assert f.kind is FindingKind.SIGNATURE_UNSUPPORTED and f.location.index == 1
    assert "key 531f4025: Ed25519 keys cannot verify IMA signatures (RSA, ECDSA or DSA)" in f.message


def test_keyring_files_that_are_not_keys_are_located_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"k\.pem is not a certificate or public key: a PRIVATE KEY block"):
        load_keyring(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k.pem")
    with pytest.raises(InputError, match="is not a certificate or public key"):
        load_keyring(b"\x30\x03\x02\x01\x00", "k.der")
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    r = ftrust("ima", "verify", KEYLIME / "head-SIGNATURES.DERIVED.txt", "--keyring", bad)
    assert r.returncode != 0 and f"{bad}" in r.stderr and "Traceback" not in r.stderr


def test_require_signature_policy_on_the_acs_log() -> None:
    """`require signature "/usr/**" by acs` over the real list: exactly the /usr entries whose
    expected result is not VERIFIED by 0beb6a13 are denied, each with its status and key id."""
    from floodlight_trust.claims import ClaimSet
    from policy_lang import compile_policy_text

    cert = x509.load_der_x509_certificate((ACS / "imakey.der").read_bytes())
    a = appraise_measurement_list((ACS / "imasig.log").read_bytes(), keyring=[cert])
    rows = expected(ACS / "expected.DERIVED.jsonl")
    digests = ", ".join(sorted({f'"{x}"' for x in a.claims.digests}))
    policy = compile_policy_text(
        f'key acs = "0beb6a13"\nhost h {{\n    allow any digest in {{{digests}}}\n'
        '    require signature "/usr/**" by acs\n}\n',
        filename="acs.policy",
    )
    decision = policy.evaluate_host("h", ClaimSet(verified_at=datetime.datetime.now(datetime.UTC), ima=a.claims))
    denied = {r.evidence["index"]: r for r in decision.failures if r.rule == "require_signature"}
    want = {
        r["index"]
        for r in rows
        if r["path"].startswith("/usr/") and not (r["result"] == "VERIFIED" and r["keyid"] == "0beb6a13")
    }
    assert not decision.allowed and set(denied) == want and {591, 1080, 1081, 1082} <= want
    assert denied[1081].evidence["signature"] == "unknown-key" and denied[1081].evidence["key_id"] == "fec3e51d"
    assert denied[1082].evidence["signature"] == "invalid" and denied[1080].evidence["signature"] == "none"
