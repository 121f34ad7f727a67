"""The agent's evidence messages, parsed once where they reach the Verification Manager.

``host_evidence`` and ``enclave_evidence`` documents are checked against their JSON Schema and
become frozen :class:`HostEvidence` / :class:`EnclaveEvidence` values: bytes as bytes, the evidence
type and key mode as enums, collateral and the TPM quote as parsed structures. Nothing past this
point sees the JSON document or decodes base64 again.

What a message carries decides which failures stop it here. The schema, base64 of the quote, the
IMA list and the enclave key: :class:`EvidenceParseError` (the evidence proves nothing, and the
nonce is not even looked at). Collateral and the TPM quote are parsed here too, but a failure is
kept as an :class:`Unparsed` value in their place, and the judge reports it at the check that
needs them (``sgx.collateral``, ``protocol.evidence``), after the nonce check, as a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from floodlight_trust.claims import EvidenceType
from floodlight_trust.errors import FtrustError, InputError
from floodlight_trust.evidence.collateral import Collateral, collateral_from_json
from floodlight_trust.evidence.tpm.structures import Attest, parse_attest, pcrs_from_json
from floodlight_trust.protocol import b64decode, validate


class KeyMode(StrEnum):
    """Whose key a VNF certificate certifies."""

    ENCLAVE = "enclave"  # the enclave's own quote-bound key (default)
    VM_GENERATED = "vm-generated"  # a key the VM generates and seals to the enclave's key


class EvidenceParseError(InputError):
    """A field of schema-valid evidence does not decode (its base64): the evidence proves nothing.
    ``host`` (and ``vnf``) name whom the message claims to be about, for the recorded refusal."""

    def __init__(self, message: str, *, host: str, vnf: str | None = None):
        super().__init__(message)
        self.host = host
        self.vnf = vnf


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A part of the evidence that did not parse: reported by the check that needs it."""

    what: str
    error: FtrustError


@dataclass(frozen=True)
class HostTpmEvidence:
    """The ``tpm`` object of host evidence."""

    attest: Attest
    attest_bytes: bytes
    signature_bytes: bytes
    pcrs: dict[str, dict[int, bytes]]

    def boot_pcrs(self) -> dict[str, dict[int, str]]:
        """The quoted values of every PCR but 10 (IMA's), as hex."""
        return {b: {p: v.hex() for p, v in sorted(vals.items()) if p != 10} for b, vals in self.pcrs.items()}

    @classmethod
    def from_json(cls, doc: Any) -> HostTpmEvidence:
        raw = b64decode(doc["attest"], what="host_evidence.tpm.attest")
        sig = b64decode(doc["signature"], what="host_evidence.tpm.signature")
        return cls(parse_attest(raw), raw, sig, pcrs_from_json(doc["pcrs"], "host_evidence.tpm.pcrs"))


def _collateral(doc: Any, what: str) -> Collateral | Unparsed | None:
    if doc is None:
        return None  # the VM fetches it (PCS / PCCS) when it has a client configured
    try:
        return collateral_from_json(doc)
    except FtrustError as e:
        return Unparsed(what, e)


@dataclass(frozen=True, slots=True)
class HostEvidence:
    """A host's answer to a challenge: its integrity enclave's quote and its IMA list (from
    ``ima_offset`` on), REPORTDATA = SHA-256(nonce || SHA-256(the whole list) [|| SHA-256(TPM attest)])."""

    host: str
    nonce: bytes
    evidence_type: EvidenceType
    quote: bytes
    collateral: Collateral | Unparsed | None
    ima_list: bytes  # the bytes sent: the whole list when ima_offset is 0, else its tail
    ima_offset: int
    ima_source: str | None
    tpm: HostTpmEvidence | Unparsed | None

    @classmethod
    def from_json(cls, doc: Any) -> HostEvidence:
        """Validate ``doc`` (InputError naming the JSON path) and parse it."""
        validate("host_evidence", doc)
        host = doc["host"]
        try:
            quote = b64decode(doc["quote"], what="host_evidence.quote")
            sent = b64decode(doc["ima_list"], what="host_evidence.ima_list")
        except FtrustError as e:
            raise EvidenceParseError(e.message, host=host) from None
        tpm: HostTpmEvidence | Unparsed | None = None
        if doc.get("tpm"):
            try:
                tpm = HostTpmEvidence.from_json(doc["tpm"])
            except FtrustError as e:
                tpm = Unparsed("host_evidence.tpm", e)
        return cls(
            host=host,
            nonce=bytes.fromhex(doc["nonce"]),  # the schema holds it to 64 lowercase hex digits
            evidence_type=EvidenceType(doc["evidence_type"]),
            quote=quote,
            collateral=_collateral(doc["collateral"], "host_evidence.collateral"),
            ima_list=sent,
            ima_offset=int(doc.get("ima_offset", 0)),
            ima_source=doc.get("ima_source"),
            tpm=tpm,
        )


@dataclass(frozen=True, slots=True)
class EnclaveEvidence:
    """A VNF enclave's answer to a challenge: its quote, REPORTDATA = SHA-256(nonce ||
    SHA-256(public_key)), and its public key (SubjectPublicKeyInfo DER)."""

    host: str
    vnf: str
    nonce: bytes
    evidence_type: EvidenceType
    quote: bytes
    collateral: Collateral | Unparsed | None
    public_key: bytes
    key_mode: KeyMode | None  # None: the VM's setting decides

    @classmethod
    def from_json(cls, doc: Any) -> EnclaveEvidence:
        """Validate ``doc`` (InputError naming the JSON path) and parse it."""
        validate("enclave_evidence", doc)
        host, vnf = doc["host"], doc["vnf"]
        try:
            quote = b64decode(doc["quote"], what="enclave_evidence.quote")
            spki = b64decode(doc["public_key"], what="enclave_evidence.public_key")
        except FtrustError as e:
            raise EvidenceParseError(e.message, host=host, vnf=vnf) from None
        mode = doc.get("key_mode")
        return cls(
            host=host,
            vnf=vnf,
            nonce=bytes.fromhex(doc["nonce"]),
            evidence_type=EvidenceType(doc["evidence_type"]),
            quote=quote,
            collateral=_collateral(doc["collateral"], "enclave_evidence.collateral"),
            public_key=spki,
            key_mode=KeyMode(mode) if mode else None,
        )


def host_evidence(doc: HostEvidence | Mapping[str, Any]) -> HostEvidence:
    """``doc`` parsed (a value parsed already is returned as it is)."""
    return doc if isinstance(doc, HostEvidence) else HostEvidence.from_json(doc)


def enclave_evidence(doc: EnclaveEvidence | Mapping[str, Any]) -> EnclaveEvidence:
    """``doc`` parsed (a value parsed already is returned as it is)."""
    return doc if isinstance(doc, EnclaveEvidence) else EnclaveEvidence.from_json(doc)
