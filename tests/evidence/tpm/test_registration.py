"""Attestation-key trust from real evidence: EK certificates chained to manufacturer roots (STMicro,
Google), and MakeCredential against keylime's known answers (tests/data/tpm, PROVENANCE.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.errors import InputError, ParseError
from floodlight_trust.evidence.tpm.credential import kdfa, kdfe, make_credential, parse_tools_credential
from floodlight_trust.evidence.tpm.ek import read_certificate, read_certificates, verify_ek_certificate
from floodlight_trust.evidence.tpm.structures import parse_public

pytestmark = pytest.mark.filterwarnings("error")
AT = datetime(2023, 11, 14, tzinfo=UTC)  # the date the provenance checked the STM chains with OpenSSL


@pytest.fixture(scope="module")
def tpm(testdata: Path) -> Path:
    return testdata / "tpm"


def _dir(folder: Path) -> list:
    return [
        c
        for p in sorted(folder.iterdir())
        if p.suffix in (".pem", ".crt", ".cer")
        for c in read_certificates(p.read_bytes(), p.name)
    ]


def test_stm_ecc_ek_chains_to_globalsign(tpm: Path) -> None:
    result = verify_ek_certificate(read_certificate((tpm / "ek-certs/stm/stm_ecc_ek_cert.der").read_bytes()),
                                   _dir(tpm / "ek-certs/stm"), at=AT)  # fmt: skip
    assert result.ok, result.reasons
    names = [c.subject.rfc4514_string() for c in result.chain]
    assert names[1].startswith("CN=STM TPM ECC Intermediate CA 01")
    assert names[-1].startswith("CN=GlobalSign Trusted Platform Module ECC Root CA")


def test_stm_rsa_ek_with_nv_padding_is_trimmed_and_chains(tpm: Path) -> None:
    cert = read_certificate((tpm / "ek-certs/stm/stm_rsa_ek_cert.der").read_bytes())
    assert cert.padding_trimmed == 1600 - 1169
    result = verify_ek_certificate(cert, _dir(tpm / "ek-certs/stm"), at=AT)
    assert result.ok, result.reasons
    assert "NV padding" in result.notes[0]
    assert result.chain[-1].subject.rfc4514_string().startswith("CN=GlobalSign Trusted Platform Module Root CA")


def test_stm_rsa_ek_against_the_ecc_chain_only_fails(tpm: Path) -> None:
    ecc_only = [c for c in _dir(tpm / "ek-certs/stm") if "ECC" in c.subject.rfc4514_string()]
    result = verify_ek_certificate(
        read_certificate((tpm / "ek-certs/stm/stm_rsa_ek_cert.der").read_bytes()), ecc_only, at=AT
    )
    assert not result.ok
    assert "no chain" in result.reasons[0] and "STM TPM EK Intermediate CA 05" in result.reasons[0]


def test_an_ek_certificate_is_refused_outside_its_validity(tpm: Path) -> None:
    result = verify_ek_certificate(read_certificate((tpm / "ek-certs/stm/stm_ecc_ek_cert.der").read_bytes()),
                                   _dir(tpm / "ek-certs/stm"), at=datetime(2060, 1, 1, tzinfo=UTC))  # fmt: skip
    assert not result.ok and any("not valid at 2060" in r for r in result.reasons)


@pytest.mark.parametrize(
    "name",
    ["pca_tpm_rsa_enc_cert.pem", "pca_tpm_ecc_enc_cert.pem", "uca_tpm_rsa_enc_cert.pem", "uca_tpm_ecc_enc_cert.pem"],
)
def test_google_vtpm_ek_certificates_chain_to_google_roots(tpm: Path, name: str) -> None:
    roots = [read_certificate(p.read_bytes()).certificate for p in sorted((tpm / "go-tpm-tools/ca-certs").iterdir())]
    result = verify_ek_certificate(read_certificate((tpm / "go-tpm-tools/gce-ek-ak-certs" / name).read_bytes()), roots,
                                   at=datetime(2024, 6, 1, tzinfo=UTC))  # fmt: skip
    assert result.ok, result.reasons
    assert len(result.chain) == 3


def test_an_unrelated_ca_does_not_anchor_a_certificate(tpm: Path) -> None:
    cmc = tpm / "fraunhofer-cmc"
    ak_cert = read_certificate((cmc / "ak_cert.pem").read_bytes())
    assert verify_ek_certificate(ak_cert, read_certificates((cmc / "ca.pem").read_bytes(), "ca"), at=AT).ok
    assert not verify_ek_certificate(ak_cert, read_certificates((cmc / "invalid_ca.pem").read_bytes(), "ca"), at=AT).ok


def test_the_certificate_must_carry_the_tpms_ek(tpm: Path) -> None:
    roots = _dir(tpm / "ek-certs/stm")
    other_ek = parse_public((tpm / "keylime/tpm_util_test-makecredential/ecc_ek.tpm2b_public").read_bytes())
    result = verify_ek_certificate(read_certificate((tpm / "ek-certs/stm/stm_ecc_ek_cert.der").read_bytes()), roots,
                                   at=AT, ek_public=other_ek)  # fmt: skip
    assert not result.ok and "not for this EK" in result.reasons[0]


def test_garbage_after_a_der_certificate_is_a_located_error(tpm: Path) -> None:
    der = read_certificate((tpm / "ek-certs/stm/stm_ecc_ek_cert.der").read_bytes())
    raw = (tpm / "ek-certs/stm/stm_ecc_ek_cert.der").read_bytes()
    assert der.padding_trimmed == 0
    with pytest.raises(ParseError) as info:
        read_certificate(raw + b"\x01\x02")
    assert info.value.location is not None and info.value.location.offset == len(raw)


def test_make_credential_rsa_known_answer(tpm: Path) -> None:
    folder = tpm / "keylime/tpm_util_test-makecredential"
    v = json.loads((folder / "vectors.json").read_text())["rsa"]
    ek = parse_public((folder / "rsa_ek.tpm2b_public").read_bytes())
    assert ek.name.hex() == v["ek_name"]
    cred = make_credential(
        ek, bytes.fromhex(v["challenge_hex"]), bytes.fromhex(v["ak_name"]), seed=bytes.fromhex(v["seed"])
    )
    assert cred.to_tools_format()[:80] == (folder / "rsa_expected_first80.bin").read_bytes()
    assert len(cred.secret) == 2 + 256  # RSA-OAEP to a 2048-bit EK


def test_make_credential_ecc_known_answer(tpm: Path) -> None:
    folder = tpm / "keylime/tpm_util_test-makecredential"
    v = json.loads((folder / "vectors.json").read_text())["ecc"]
    ek = parse_public((folder / "ecc_ek.tpm2b_public").read_bytes())
    assert ek.name.hex() == v["ek_name"]
    ephemeral = ec.derive_private_key(int(v["ephemeral_private_key_int"]), ec.SECP256R1())
    cred = make_credential(ek, bytes.fromhex(v["challenge_hex"]), bytes.fromhex(v["ak_name"]), ephemeral_key=ephemeral)
    assert cred.to_tools_format() == (folder / "ecc_expected_credential.bin").read_bytes()
    assert parse_tools_credential(cred.to_tools_format()) == cred
    # KDFe from the ECDH secret gives the stated seed
    z = ephemeral.exchange(
        ec.ECDH(),
        ec.EllipticCurvePublicNumbers(
            int.from_bytes(ek.x, "big"), int.from_bytes(ek.y, "big"), ec.SECP256R1()
        ).public_key(),
    )
    ex = int(v["ephemeral_pub_x_int"]).to_bytes(32, "big")
    assert kdfe("sha256", z, b"IDENTITY", ex, ek.x, 256).hex() == v["kdfe_seed"]


def test_kdfa_truncates_to_odd_bit_counts() -> None:
    full = kdfa("sha256", b"k", b"L", b"u", b"v", 256)
    assert len(full) == 32 and len(kdfa("sha256", b"k", b"L", b"u", b"v", 300)) == 38
    assert kdfa("sha256", b"k", b"L", b"u", b"v", 4)[0] < 16


def test_the_keylime_tools_credential_file_parses(tpm: Path) -> None:
    cred = parse_tools_credential((tpm / "keylime/test-data-files/mkcred.out").read_bytes())
    assert len(cred.blob) == 2 + 0x2D and len(cred.secret) == 2 + 256
    with pytest.raises(ParseError):
        parse_tools_credential((tpm / "keylime/test-data-files/mkcred.out").read_bytes()[:-1])


def test_a_credential_is_refused_for_a_non_storage_key(tpm: Path) -> None:
    ak = parse_public((tpm / "keylime/test-data-files/ak.pub").read_bytes())
    with pytest.raises(InputError):
        make_credential(ak, b"secret", ak.name)
