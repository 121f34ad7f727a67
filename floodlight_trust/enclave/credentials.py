"""Credentials offered to a VNF enclave, and the enclave's judgement of them (pure).

The agent relays the VM's ``credentials`` message; the enclave trusts none of it until it checks:

- ``enclave.credentials.vnf``: the message is for this enclave's VNF;
- ``enclave.credentials.chain``: the leaf is issued by the VM CA the enclave PINS (a file of its
  own image, so part of its MRENCLAVE), valid now, for TLS client authentication;
- ``enclave.credentials.key``: the leaf certifies the enclave's own bound key (enclave mode), or
  the key unwrapped inside the enclave (vm-generated mode);
- ``enclave.credentials.provisioning``: the VM's signature (pinned CA key) over the provisioning
  statement binds the credentials to a nonce THIS enclave quoted over, its key, the leaf and the
  wrapped key; required when a wrapped key is offered, checked whenever present;
- ``enclave.credentials.wrapped_key``: the wrapped key opens with the enclave's key and is the
  private key of the leaf;
- ``enclave.credentials.rollback``: the leaf is not older than the one installed.

Every check runs and reports its reason (:func:`judge_offer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from floodlight_trust.errors import FtrustError, InputError, VerificationError
from floodlight_trust.protocol import validate
from floodlight_trust.protocol.keywrap import WrappedKey, unwrap_private_key
from floodlight_trust.protocol.provisioning import provisioning_statement, statement_signed_by
from floodlight_trust.reasons import Reason

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CredentialsRefused(VerificationError):
    """The enclave refused offered credentials; ``refusal`` says why (every failed check), and
    ``reasons`` is the same as JSON for an HTTP error document (``http/server.py``)."""

    def __init__(self, vnf: str, reasons: list[Reason]):
        text = "; ".join(f"{r.rule}: {r.message}" for r in reasons)
        super().__init__(f"enclave of {vnf} refused the credentials: {text}")
        self.vnf = vnf
        self.refusal = reasons
        self.reasons = [{"rule": r.rule, "message": r.message} for r in reasons]


@dataclass(frozen=True, slots=True)
class Provisioning:
    nonce: bytes
    signature: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CredentialsOffer:
    """A ``credentials`` message, parsed once where it arrives."""

    host: str
    vnf: str
    serial: str
    chain_pem: tuple[str, ...]
    chain: tuple[x509.Certificate, ...]
    wrapped: WrappedKey | None
    provisioning: Provisioning | None

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> CredentialsOffer:
        validate("credentials", message)
        chain: list[x509.Certificate] = []
        for i, pem in enumerate(message["certificate_chain"]):
            try:
                chain.append(x509.load_pem_x509_certificate(pem.encode("utf-8", "surrogatepass")))
            except ValueError:
                raise InputError(f"credentials: certificate_chain[{i}] is not a PEM certificate") from None
        wrapped = WrappedKey.from_json(message["wrapped_key"]) if message["wrapped_key"] else None
        prov = message.get("provisioning")
        provisioning = None
        if prov is not None:
            try:
                signature = base64.b64decode(prov["signature"], validate=True)
            except ValueError:
                raise InputError("credentials: provisioning.signature is not base64") from None
            provisioning = Provisioning(bytes.fromhex(prov["nonce"]), signature)
        return cls(
            message["host"],
            message["vnf"],
            message["serial"],
            tuple(message["certificate_chain"]),
            tuple(chain),
            wrapped,
            provisioning,
        )


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the enclave decided about an offer: every reason, and the key it would use."""

    reasons: tuple[Reason, ...]
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)  # vm-generated mode

    @property
    def accepted(self) -> bool:
        return not self.reasons


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(*_SPKI))


def _check_chain(offer: CredentialsOffer, vm_ca: x509.Certificate, at: datetime) -> list[Reason]:
    leaf = offer.leaf
    out: list[Reason] = []
    try:
        leaf.verify_directly_issued_by(vm_ca)
    except (ValueError, TypeError, InvalidSignature) as e:  # each means: not issued by our CA
        name = type(e).__name__
        out.append(
            Reason(
                "enclave.credentials.chain",
                f"the leaf certificate (issuer {leaf.issuer.rfc4514_string()[:80]!r}) is not issued by the pinned "
                f"VM CA {vm_ca.subject.rfc4514_string()[:80]!r} ({name})",
            )
        )
        return out
    for extra in offer.chain[1:]:
        if extra != vm_ca:
            out.append(
                Reason("enclave.credentials.chain", "the chain carries a certificate other than the pinned VM CA")
            )
            break
    # An enclave's clock is the untrusted OS's: only an expired leaf is refused here (useless
    # anyway); the controller judges validity. Freshness comes from the provisioning nonce.
    if leaf.not_valid_after_utc <= at:
        out.append(
            Reason(
                "enclave.credentials.chain",
                f"the leaf expired at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in eku
    except x509.ExtensionNotFound:
        client_auth = False
    if not client_auth:
        out.append(Reason("enclave.credentials.chain", "the leaf is not a TLS client certificate (no clientAuth)"))
    return out


def judge_offer(
    offer: CredentialsOffer,
    *,
    vnf: str,
    vm_ca: x509.Certificate | None,
    enclave_key: ec.EllipticCurvePrivateKey,
    challenged: Collection[bytes],
    installed_not_before: datetime | None,
    at: datetime,
) -> Judgement:
    """The enclave's decision on ``offer`` (pure: the pinned CA, its key, the nonces it quoted over
    and the time come in as arguments)."""
    reasons: list[Reason] = []
    if offer.vnf != vnf:
        reasons.append(Reason("enclave.credentials.vnf", f"credentials for {offer.vnf!r} offered to {vnf!r}"))
    if vm_ca is None:
        reasons.append(Reason("enclave.credentials.chain", "this enclave pins no VM CA: it accepts no credentials"))
    else:
        reasons.extend(_check_chain(offer, vm_ca, at))
    own_spki = _spki(enclave_key.public_key())
    leaf_spki = _spki(offer.leaf.public_key())
    leaf_der = offer.leaf.public_bytes(serialization.Encoding.DER)

    if offer.provisioning is None:
        if offer.wrapped is not None:
            reasons.append(
                Reason(
                    "enclave.credentials.provisioning",
                    "a wrapped key without the VM's provisioning signature: not authenticated as the VM's",
                )
            )
    else:
        prov = offer.provisioning
        if not any(hmac.compare_digest(prov.nonce, n) for n in challenged):
            reasons.append(
                Reason(
                    "enclave.credentials.provisioning",
                    f"nonce {prov.nonce.hex()[:16]}... is not one this enclave quoted over (replayed or foreign)",
                )
            )
        statement = provisioning_statement(
            nonce=prov.nonce, vnf=vnf, enclave_spki=own_spki, leaf_der=leaf_der, wrapped=offer.wrapped
        )
        if vm_ca is not None and not statement_signed_by(vm_ca.public_key(), statement, prov.signature):
            reasons.append(
                Reason(
                    "enclave.credentials.provisioning",
                    "the provisioning signature does not verify with the pinned VM CA key "
                    "(not from the VM, or not for this enclave, key, leaf and wrapped key)",
                )
            )

    private_key: ec.EllipticCurvePrivateKey | None = None
    if offer.wrapped is None:
        if not hmac.compare_digest(leaf_spki, own_spki):
            reasons.append(
                Reason(
                    "enclave.credentials.key",
                    f"the leaf certifies key {hashlib.sha256(leaf_spki).hexdigest()[:16]}..., not this enclave's "
                    f"bound key {hashlib.sha256(own_spki).hexdigest()[:16]}...",
                )
            )
    else:
        try:
            der = unwrap_private_key(offer.wrapped, enclave_key, context=f"vnf:{vnf}".encode())
            loaded = serialization.load_der_private_key(der, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                reasons.append(Reason("enclave.credentials.wrapped_key", "the wrapped key is not an EC key"))
            elif not hmac.compare_digest(_spki(loaded.public_key()), leaf_spki):
                reasons.append(
                    Reason("enclave.credentials.wrapped_key", "the wrapped key is not the private key of the leaf")
                )
            else:
                private_key = loaded
        except (FtrustError, ValueError) as e:
            message = e.message if isinstance(e, FtrustError) else "not a PKCS#8 private key"
            reasons.append(Reason("enclave.credentials.wrapped_key", message))
    if installed_not_before is not None and offer.leaf.not_valid_before_utc < installed_not_before:
        reasons.append(
            Reason(
                "enclave.credentials.rollback",
                "the offered leaf is older than the installed one (a replayed certificate)",
            )
        )
    return Judgement(tuple(reasons), private_key if not reasons else None)
