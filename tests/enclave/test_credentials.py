"""The enclave's judgement of offered credentials (pure: no files, no clock, no network)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from floodlight_trust.enclave.credentials import CredentialsOffer, judge_offer
from floodlight_trust.errors import InputError
from floodlight_trust.protocol.keywrap import wrap_private_key
from floodlight_trust.protocol.provisioning import provisioning_statement, sign_statement

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
VNF = "vnf-a"


def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VM CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(AT - timedelta(days=1)).not_valid_after(AT + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def leaf(
    ca_key: Any, ca_cert: x509.Certificate, public_key: Any, *, not_before: datetime = AT, client_auth: bool = True
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, VNF)]))
        .issuer_name(ca_cert.subject).public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_before + timedelta(hours=1))
    )  # fmt: skip
    if client_auth:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def offer(
    chain: list[x509.Certificate], *, vnf: str = VNF, wrapped: Any = None, provisioning: dict[str, str] | None = None
) -> CredentialsOffer:
    message: dict[str, Any] = {
        "host": "h",
        "vnf": vnf,
        "serial": "1",
        "certificate_chain": [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain],
        "wrapped_key": wrapped.to_json() if wrapped else None,
    }
    if provisioning:
        message["provisioning"] = provisioning
    return CredentialsOffer.parse(message)


def signed(ca_key: Any, nonce: bytes, enclave: Any, cert: x509.Certificate, wrapped: Any = None) -> dict[str, str]:
    statement = provisioning_statement(
        nonce=nonce,
        vnf=VNF,
        enclave_spki=enclave.public_key().public_bytes(*SPKI),
        leaf_der=cert.public_bytes(serialization.Encoding.DER),
        wrapped=wrapped,
    )
    return {"nonce": nonce.hex(), "signature": base64.b64encode(sign_statement(ca_key, statement)).decode()}


def rules(judgement: Any) -> list[str]:
    return [r.rule for r in judgement.reasons]


def test_genuine_credentials_are_accepted_in_both_key_modes() -> None:
    ca_key, ca_cert = ca()
    enclave = ec.generate_private_key(ec.SECP256R1())
    nonce = os.urandom(32)
    cert = leaf(ca_key, ca_cert, enclave.public_key())
    j = judge_offer(
        offer([cert, ca_cert], provisioning=signed(ca_key, nonce, enclave, cert)),
        vnf=VNF, vm_ca=ca_cert, enclave_key=enclave, challenged=[nonce], installed_not_before=None, at=AT,
    )  # fmt: skip
    assert j.accepted and j.private_key is None
    provisioned = ec.generate_private_key(ec.SECP256R1())
    der = provisioned.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    wrapped = wrap_private_key(der, enclave.public_key().public_bytes(*SPKI), context=f"vnf:{VNF}".encode())
    cert2 = leaf(ca_key, ca_cert, provisioned.public_key())
    j = judge_offer(
        offer([cert2], wrapped=wrapped, provisioning=signed(ca_key, nonce, enclave, cert2, wrapped)),
        vnf=VNF, vm_ca=ca_cert, enclave_key=enclave, challenged=[nonce], installed_not_before=None, at=AT,
    )  # fmt: skip
    assert j.accepted and j.private_key is not None
    assert j.private_key.public_key().public_bytes(*SPKI) == provisioned.public_key().public_bytes(*SPKI)


def test_every_failed_check_is_reported() -> None:
    ca_key, ca_cert = ca()
    other_key, other_ca = ca()
    enclave = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    old = AT - timedelta(hours=2)
    cert = leaf(ca_key, ca_cert, stranger.public_key(), not_before=old, client_auth=False)
    j = judge_offer(
        offer([cert, other_ca], vnf="vnf-b", provisioning=signed(other_key, os.urandom(32), enclave, cert)),
        vnf=VNF, vm_ca=ca_cert, enclave_key=enclave, challenged=[], installed_not_before=AT - timedelta(hours=1),
        at=AT,
    )  # fmt: skip
    assert rules(j) == [
        "enclave.credentials.vnf",
        "enclave.credentials.chain",  # another certificate than the pin in the chain
        "enclave.credentials.chain",  # expired
        "enclave.credentials.chain",  # no clientAuth
        "enclave.credentials.provisioning",  # nonce not quoted over
        "enclave.credentials.provisioning",  # not signed by the pinned CA
        "enclave.credentials.key",  # not the enclave's key
        "enclave.credentials.rollback",
    ], j.reasons


def test_an_enclave_without_a_pin_accepts_nothing() -> None:
    ca_key, ca_cert = ca()
    enclave = ec.generate_private_key(ec.SECP256R1())
    j = judge_offer(
        offer([leaf(ca_key, ca_cert, enclave.public_key())]),
        vnf=VNF, vm_ca=None, enclave_key=enclave, challenged=[], installed_not_before=None, at=AT,
    )  # fmt: skip
    assert rules(j) == ["enclave.credentials.chain"] and "pins no VM CA" in j.reasons[0].message


@pytest.mark.parametrize(
    "chain",
    [["not a certificate"], ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"], []],
    ids=["text", "bad-der", "empty"],
)
def test_malformed_offers_are_input_errors(chain: list[str]) -> None:
    with pytest.raises(InputError, match="credentials"):
        CredentialsOffer.parse(
            {"host": "h", "vnf": VNF, "serial": "1", "certificate_chain": chain, "wrapped_key": None}
        )
