from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.errors import InputError, VerificationError
from floodlight_trust.protocol import SCHEMA_NAMES, schema, validate
from floodlight_trust.protocol.binding import check_report_data, host_report_data, key_report_data
from floodlight_trust.protocol.keywrap import WrappedKey, unwrap_private_key, wrap_private_key


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_every_schema_loads_and_is_valid() -> None:
    for name in SCHEMA_NAMES:
        assert schema(name)["title"] == name
        validate("challenge", {"nonce": "ab" * 32})


def test_invalid_message_names_the_path() -> None:
    with pytest.raises(InputError, match=r"invalid challenge message at /nonce"):
        validate("challenge", {"nonce": "xyz"})
    with pytest.raises(InputError, match=r"Additional properties"):
        validate("challenge", {"nonce": "ab" * 32, "extra": 1})


def test_report_data_layouts() -> None:
    nonce = bytes(range(32))
    ima = b"10 abc ima-ng sha256:00 boot_aggregate\n"
    rd = host_report_data(nonce, ima)
    assert rd == hashlib.sha256(nonce + hashlib.sha256(ima).digest()).digest() + bytes(32)
    key = b"\x30\x59fake-spki"
    assert key_report_data(nonce, key)[:32] == hashlib.sha256(nonce + hashlib.sha256(key).digest()).digest()
    check_report_data(rd, rd.hex(), what="host quote")
    with pytest.raises(VerificationError, match="does not bind the nonce"):
        check_report_data(rd, key_report_data(nonce, key).hex(), what="host quote")
    with pytest.raises(InputError):
        host_report_data(b"short", ima)


def test_key_wrap_opens_only_for_the_bound_enclave() -> None:
    enclave = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    secret = b"pkcs8 private key bytes"
    wrapped = wrap_private_key(secret, spki(enclave), context=b"vnf:fw")
    again = WrappedKey.from_json(wrapped.to_json())
    assert unwrap_private_key(again, enclave, context=b"vnf:fw") == secret
    with pytest.raises(VerificationError, match="another enclave"):
        unwrap_private_key(again, other, context=b"vnf:fw")
    with pytest.raises(VerificationError):
        unwrap_private_key(again, enclave, context=b"vnf:other")
