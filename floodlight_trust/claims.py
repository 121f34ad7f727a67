"""Claim types: the typed facts that verified evidence yields and that policies judge.

This is the one contract between the evidence side (``floodlight_trust.evidence``: IMA, SGX DCAP,
IAS) and the policy side (``policy_lang``). The policy language knows these names and types and
nothing of quote or log bytes; the evidence side produces exactly these and nothing policy-specific.

Claim names as the policy language sees them (``CLAIM_TYPES``) are the single source of truth for
the checker's type errors and "did you mean" suggestions.

Digests are lowercase hex strings throughout: reference lists, JSON claims files and policies all
write hex, and comparing hex text avoids a conversion per entry in hot loops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from floodlight_trust.clock import format_time, parse_time
from floodlight_trust.errors import InputError, ParseError


class EvidenceType(StrEnum):
    """How an enclave's evidence was verified."""

    DCAP = "DCAP"  # ECDSA quote v3 with Intel PCS collateral
    IAS = "IAS"  # EPID quote verified by the Intel Attestation Service


class TcbStatus(StrEnum):
    """Intel's TCB status names (QVL / PCS v4), shared by DCAP and IAS (mapped from quote status)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"

    @classmethod
    def parse(cls, text: str, *, what: str | None = None) -> TcbStatus:
        """The status named ``text`` (Intel's exact spelling); ParseError naming ``what`` otherwise."""
        try:
            return cls(text)
        except ValueError:
            prefix = f"{what}: " if what else ""
            raise ParseError(
                f"{prefix}unknown TCB status {text!r}", hint="one of " + ", ".join(m.value for m in cls)
            ) from None


class SignatureStatus(StrEnum):
    """The state of an IMA file signature (ima-sig / ima-modsig / evm-sig entries)."""

    NONE = "none"  # the entry carries no signature
    VALID = "valid"  # verified by a key in the given keyring
    INVALID = "invalid"  # a key matched the key id but the signature is wrong
    UNKNOWN_KEY = "unknown-key"  # no key with that key id was given
    UNCHECKED = "unchecked"  # a signature is present but no keyring was given (or, for a non-portable
    # EVM signature, it covers inode data the list does not record)


@dataclass(frozen=True, slots=True)
class ImaEntry:
    """One appraised IMA measurement, as a policy sees it (a row of :class:`ImaClaims`)."""

    index: int  # position in the whole list, 0-based
    template: str  # "ima-ng", "ima-sig", ..., or the custom descriptor "d-ng|n-ng|sig"
    path: str  # file name / buffer name ("boot_aggregate" for the first entry)
    digest_algorithm: str  # "sha1", "sha256", ... ("md5" possible with old templates)
    digest: str  # lowercase hex of the file (or buffer) digest
    signature: SignatureStatus
    signature_key_id: str | None  # hex of the 4-byte key id of the signature, if any (an appended
    # signature whose certificate is not in the keyring: how it names its signer, "issuer=..., serial=...")
    violation: bool  # the kernel recorded a measurement violation (all-zero template hash)


@dataclass(frozen=True, slots=True)
class TpmClaims:
    """What a verified TPM quote of a host says, for the host policy's ``tpm`` and ``boot_pcrs``.

    ``anchored``: this round's quote verified with the AK pinned at registration, bound to the nonce
    and the SGX quote, and PCR 10 matched the IMA list. ``pcrs``: the quoted values (bank -> PCR ->
    hex), only when their digest matched the quote. ``registered_pcrs``: those of the first verified
    quote after the TPM was registered (the baseline of ``boot_pcrs = "unchanged"``).
    """

    anchored: bool
    pcrs: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    registered_pcrs: Mapping[str, Mapping[int, str]] | None = None


@dataclass(frozen=True, slots=True)
class ImaClaims:
    """A compact, columnar view of a verified IMA measurement list.

    Columns are parallel sequences, one item per entry, so a 100,000-entry list costs a few lists
    rather than 100,000 objects; :meth:`entries` yields row objects for callers that want them.
    Every entry appears (so ``first_index + i`` is the entry's index in the list); an entry whose
    template hash did not verify makes the appraisal not ok, and no policy should judge those claims.
    """

    templates: Sequence[str]
    paths: Sequence[str]
    digest_algorithms: Sequence[str]
    digests: Sequence[str]
    signatures: Sequence[SignatureStatus]
    signature_key_ids: Sequence[str | None]
    violations: frozenset[int] = frozenset()  # indices (relative to first_index) of violation entries
    first_index: int = 0  # index of the first entry in the whole list (incremental appraisal)
    boot_aggregate: str | None = None  # hex digest of the boot_aggregate entry, if present
    pcr_values: Mapping[str, str] = field(default_factory=dict)  # bank -> replayed PCR 10 (hex)
    # The algorithm of the list's template hashes (its PCR bank: sha1 for the classic lists,
    # sha256 for ascii_runtime_measurements_sha256); None when not known (claims written by hand).
    log_hash_algorithm: str | None = None

    def __post_init__(self) -> None:
        n = len(self.paths)
        for name in ("templates", "digest_algorithms", "digests", "signatures", "signature_key_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ImaClaims column {name} has {len(getattr(self, name))} items, not {n}")

    def __len__(self) -> int:
        return len(self.paths)

    def entries(self) -> Iterator[ImaEntry]:
        for i in range(len(self.paths)):
            yield ImaEntry(
                index=self.first_index + i,
                template=self.templates[i],
                path=self.paths[i],
                digest_algorithm=self.digest_algorithms[i],
                digest=self.digests[i],
                signature=self.signatures[i],
                signature_key_id=self.signature_key_ids[i],
                violation=i in self.violations,
            )

    @classmethod
    def from_entries(
        cls,
        entries: Sequence[ImaEntry],
        *,
        boot_aggregate: str | None = None,
        pcr_values: Mapping[str, str] | None = None,
        log_hash_algorithm: str | None = None,
    ) -> ImaClaims:
        first = entries[0].index if entries else 0
        return cls(
            templates=[e.template for e in entries],
            paths=[e.path for e in entries],
            digest_algorithms=[e.digest_algorithm for e in entries],
            digests=[e.digest for e in entries],
            signatures=[e.signature for e in entries],
            signature_key_ids=[e.signature_key_id for e in entries],
            violations=frozenset(i for i, e in enumerate(entries) if e.violation),
            first_index=first,
            boot_aggregate=boot_aggregate,
            pcr_values=dict(pcr_values or {}),
            log_hash_algorithm=log_hash_algorithm,
        )


@dataclass(frozen=True, slots=True)
class PlatformIdentity:
    """Which physical platform produced a quote; used to tie a VNF quote to its host's quote."""

    fmspc: str | None = None  # hex, DCAP (from the PCK certificate)
    pce_id: str | None = None  # hex, DCAP
    pck_certificate_sha256: str | None = None  # hex fingerprint of the PCK leaf, DCAP
    epid_group_id: str | None = None  # hex, EPID / IAS
    epid_pseudonym: str | None = None  # hex, IAS linkable quotes


@dataclass(frozen=True, slots=True)
class EnclaveClaims:
    """Verified identity and trust facts of one SGX enclave, the same for DCAP and IAS evidence."""

    evidence_type: EvidenceType
    mrenclave: str  # 64 hex chars
    mrsigner: str  # 64 hex chars
    isv_prod_id: int
    isv_svn: int
    debug: bool
    mode64bit: bool
    attributes: str  # 32 hex chars: flags (8 bytes LE) || xfrm (8 bytes LE), as in the report body
    misc_select: int
    config_svn: int
    config_id: str  # 128 hex chars
    isv_ext_prod_id: str  # 32 hex chars
    isv_family_id: str  # 32 hex chars
    report_data: str  # 128 hex chars
    tcb_status: TcbStatus
    advisory_ids: tuple[str, ...]
    qe_identity_status: TcbStatus | None  # DCAP only
    collateral_issued_at: datetime  # TCB info issueDate (DCAP) or IAS report timestamp
    platform: PlatformIdentity
    simulated: bool = False  # verified against the simulated SGX root: never trust in production


@dataclass(frozen=True, slots=True)
class ClaimSet:
    """What one policy evaluation judges: a host's IMA list and/or an enclave, at a time."""

    verified_at: datetime
    ima: ImaClaims | None = None
    enclave: EnclaveClaims | None = None
    subject: str | None = None  # the host or VNF name being judged, for enroll rules


# Claim names and types as the policy language sees them. Types: "hex32" = 32-byte value in hex,
# "int", "bool", "str", "hex", "tcb_status", "evidence_type", "str_list", "datetime".
CLAIM_TYPES: Mapping[str, str] = {
    "evidence_type": "evidence_type",
    "mrenclave": "hex32",
    "mrsigner": "hex32",
    "isv_prod_id": "int",
    "isv_svn": "int",
    "debug": "bool",
    "mode64bit": "bool",
    "attributes": "hex",
    "misc_select": "int",
    "config_svn": "int",
    "config_id": "hex",
    "isv_ext_prod_id": "hex",
    "isv_family_id": "hex",
    "report_data": "hex",
    "tcb_status": "tcb_status",
    "advisory_ids": "str_list",
    "qe_identity_status": "tcb_status",
    "collateral_issued_at": "datetime",
    "fmspc": "hex",
    "pck_certificate_sha256": "hex",
    "simulated": "bool",
}


# ---------------------------------------------------------------------------------------------
# JSON form, for `ftrust policy eval --claims FILE`, policy test fixtures and the audit log.


def enclave_to_json(c: EnclaveClaims) -> dict[str, Any]:
    return {
        "evidence_type": c.evidence_type.value,
        "mrenclave": c.mrenclave,
        "mrsigner": c.mrsigner,
        "isv_prod_id": c.isv_prod_id,
        "isv_svn": c.isv_svn,
        "debug": c.debug,
        "mode64bit": c.mode64bit,
        "attributes": c.attributes,
        "misc_select": c.misc_select,
        "config_svn": c.config_svn,
        "config_id": c.config_id,
        "isv_ext_prod_id": c.isv_ext_prod_id,
        "isv_family_id": c.isv_family_id,
        "report_data": c.report_data,
        "tcb_status": c.tcb_status.value,
        "advisory_ids": list(c.advisory_ids),
        "qe_identity_status": c.qe_identity_status.value if c.qe_identity_status else None,
        "collateral_issued_at": format_time(c.collateral_issued_at),
        "platform": {k: getattr(c.platform, k) for k in PlatformIdentity.__slots__},
        "simulated": c.simulated,
    }


_T = TypeVar("_T")


def _need(d: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    if key not in d:
        raise InputError(f"{where}: missing claim {key!r}")
    value = d[key]
    if isinstance(value, bool) and kind is int:
        raise InputError(f"{where}.{key}: expected an integer, got a boolean")
    if not isinstance(value, kind):
        raise InputError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _hex(d: Mapping[str, Any], key: str, where: str, nbytes: int | None = None, default: str | None = None) -> str:
    if default is not None and key not in d:
        return default
    value = _need(d, key, str, where).lower()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InputError(f"{where}.{key}: {value!r} is not hex") from None
    if nbytes is not None and len(raw) != nbytes:
        raise InputError(f"{where}.{key}: expected {nbytes} bytes ({2 * nbytes} hex digits), got {len(raw)}")
    return value


def enclave_from_json(d: Mapping[str, Any], where: str = "enclave") -> EnclaveClaims:
    if not isinstance(d, Mapping):
        raise InputError(f"{where}: expected an object")
    platform = d.get("platform") or {}
    if not isinstance(platform, Mapping):
        raise InputError(f"{where}.platform: expected an object")
    known = set(PlatformIdentity.__slots__)
    unknown = set(platform) - known
    if unknown:
        raise InputError(f"{where}.platform: unknown key {sorted(unknown)[0]!r}")
    qe = d.get("qe_identity_status")
    try:
        etype = EvidenceType(_need(d, "evidence_type", str, where))
    except ValueError:
        raise InputError(f"{where}.evidence_type: must be DCAP or IAS") from None
    return EnclaveClaims(
        evidence_type=etype,
        mrenclave=_hex(d, "mrenclave", where, 32),
        mrsigner=_hex(d, "mrsigner", where, 32),
        isv_prod_id=_need(d, "isv_prod_id", int, where),
        isv_svn=_need(d, "isv_svn", int, where),
        debug=_need(d, "debug", bool, where),
        mode64bit=bool(d.get("mode64bit", True)),
        attributes=_hex(d, "attributes", where, 16, default="0" * 32),
        misc_select=int(d.get("misc_select", 0)),
        config_svn=int(d.get("config_svn", 0)),
        config_id=_hex(d, "config_id", where, 64, default="0" * 128),
        isv_ext_prod_id=_hex(d, "isv_ext_prod_id", where, 16, default="0" * 32),
        isv_family_id=_hex(d, "isv_family_id", where, 16, default="0" * 32),
        report_data=_hex(d, "report_data", where, 64, default="0" * 128),
        tcb_status=TcbStatus.parse(_need(d, "tcb_status", str, where)),
        advisory_ids=tuple(_need(d, "advisory_ids", list, where)),
        qe_identity_status=TcbStatus.parse(qe) if qe else None,
        collateral_issued_at=parse_time(
            _need(d, "collateral_issued_at", str, where), what=f"{where}.collateral_issued_at"
        ),
        platform=PlatformIdentity(**{k: platform.get(k) for k in known}),
        simulated=bool(d.get("simulated", False)),
    )


def ima_to_json(c: ImaClaims) -> dict[str, Any]:
    return {
        "first_index": c.first_index,
        "boot_aggregate": c.boot_aggregate,
        "pcr_values": dict(c.pcr_values),
        "log_hash_algorithm": c.log_hash_algorithm,
        "entries": [
            {
                "template": e.template,
                "path": e.path,
                "digest_algorithm": e.digest_algorithm,
                "digest": e.digest,
                "signature": e.signature.value,
                "signature_key_id": e.signature_key_id,
                "violation": e.violation,
            }
            for e in c.entries()
        ],
    }


def ima_from_json(d: Mapping[str, Any], where: str = "ima") -> ImaClaims:
    if not isinstance(d, Mapping):
        raise InputError(f"{where}: expected an object")
    first = int(d.get("first_index", 0))
    rows = _need(d, "entries", list, where)
    entries: list[ImaEntry] = []
    for i, row in enumerate(rows):
        w = f"{where}.entries[{i}]"
        if not isinstance(row, Mapping):
            raise InputError(f"{w}: expected an object")
        try:
            sig = SignatureStatus(row.get("signature", "none"))
        except ValueError:
            raise InputError(f"{w}.signature: unknown status {row.get('signature')!r}") from None
        entries.append(
            ImaEntry(
                index=first + i,
                template=str(row.get("template", "ima-ng")),
                path=_need(row, "path", str, w),
                digest_algorithm=str(row.get("digest_algorithm", "sha256")),
                digest=_hex(row, "digest", w),
                signature=sig,
                signature_key_id=row.get("signature_key_id"),
                violation=bool(row.get("violation", False)),
            )
        )
    log_hash = d.get("log_hash_algorithm")
    if log_hash is not None and not isinstance(log_hash, str):
        raise InputError(f'{where}.log_hash_algorithm: expected a string such as "sha1" or null')
    claims = ImaClaims.from_entries(
        entries,
        boot_aggregate=d.get("boot_aggregate"),
        pcr_values=d.get("pcr_values") or {},
        log_hash_algorithm=log_hash,
    )
    if not entries and first:
        claims = ImaClaims([], [], [], [], [], [], first_index=first)
    return claims


def claimset_to_json(c: ClaimSet) -> dict[str, Any]:
    out: dict[str, Any] = {"verified_at": format_time(c.verified_at)}
    if c.subject is not None:
        out["subject"] = c.subject
    if c.ima is not None:
        out["ima"] = ima_to_json(c.ima)
    if c.enclave is not None:
        out["enclave"] = enclave_to_json(c.enclave)
    return out


def claimset_from_json(d: Any, where: str = "claims") -> ClaimSet:
    """Read a claims document (``{"verified_at": ..., "ima": {...}, "enclave": {...}}``)."""
    if not isinstance(d, Mapping):
        raise InputError(f"{where}: expected a JSON object")
    unknown = set(d) - {"verified_at", "subject", "ima", "enclave"}
    if unknown:
        raise InputError(
            f"{where}: unknown key {sorted(unknown)[0]!r}", hint="keys: verified_at, subject, ima, enclave"
        )
    return ClaimSet(
        verified_at=parse_time(_need(d, "verified_at", str, where), what=f"{where}.verified_at"),
        subject=d.get("subject"),
        ima=ima_from_json(d["ima"], f"{where}.ima") if d.get("ima") is not None else None,
        enclave=enclave_from_json(d["enclave"], f"{where}.enclave") if d.get("enclave") is not None else None,
    )
