"""`ftrust tpm` commands: show and verify TPM 2.0 quotes, check EK certificates.

Inputs in the forms real tools write: QUOTE as TPMS_ATTEST (``tpm2_quote -m``) or TPM2B_ATTEST;
SIG as TPMT_SIGNATURE (``tpm2_quote -s``); AK as TPM2B_PUBLIC, TPMT_PUBLIC, a PEM public key or a
certificate; PCRS as ``tpm2_quote -o``'s file or JSON ``{"sha256": {"10": "<hex>"}}``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TypeVar

from floodlight_trust import clock
from floodlight_trust.cli.output import add_group, add_json, emit
from floodlight_trust.clients.tpm_roots import read_roots_directory
from floodlight_trust.errors import ExitCode, FtrustError, InputError, Location, ParseError
from floodlight_trust.evidence.ima import ImaAppraisal, appraise_measurement_list
from floodlight_trust.evidence.ima.templates import BANKS
from floodlight_trust.evidence.tpm.ek import read_certificate, verify_ek_certificate
from floodlight_trust.evidence.tpm.keys import load_key
from floodlight_trust.evidence.tpm.quote import quoted_ima_banks, verify_quote
from floodlight_trust.evidence.tpm.structures import (
    Attest,
    PcrSelection,
    parse_attest,
    parse_pcr_file,
    parse_public,
    parse_signature,
    pcrs_from_json,
    pcrs_to_json,
)
from floodlight_trust.fileio import read_bytes


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    show = sub.add_parser("show", help="print every field of a quote", description="Print every field of a TPM quote.")
    show.add_argument("quote", metavar="QUOTE", help="TPMS_ATTEST (tpm2_quote -m) or TPM2B_ATTEST")
    add_json(show)
    show.set_defaults(func=_show)

    verify = sub.add_parser(
        "verify",
        help="verify a quote: AK signature, nonce, PCR digest, PCR 10 against an IMA list",
        description="Verify a TPM quote. Exit 0 valid, 1 verification failed (every reason printed), 2 malformed input.",
    )
    verify.add_argument("quote", metavar="QUOTE", help="TPMS_ATTEST (tpm2_quote -m) or TPM2B_ATTEST")
    verify.add_argument("--signature", metavar="SIG", required=True, help="TPMT_SIGNATURE (tpm2_quote -s)")
    verify.add_argument("--ak", metavar="AK", required=True, help="TPM2B_PUBLIC, TPMT_PUBLIC, PEM key or certificate")
    verify.add_argument("--pcrs", metavar="PCRS", required=True, help="tpm2_quote -o file or JSON {bank: {pcr: hex}}")
    verify.add_argument("--nonce", metavar="HEX", required=True, help="expected qualifying data, hex (may be empty)")
    verify.add_argument("--ima-log", metavar="LOG", help="IMA measurement list that PCR 10 must replay to")
    add_json(verify)
    verify.set_defaults(func=_verify)

    ek = sub.add_parser(
        "ek-check",
        help="chain an EK certificate to manufacturer roots",
        description="Verify an EK certificate (PEM or DER as read from NV) against a directory of manufacturer CAs.",
    )
    ek.add_argument("ek_cert", metavar="EKCERT", help="EK certificate, PEM or DER (NV padding is trimmed)")
    ek.add_argument("--roots", metavar="DIR", required=True, help="directory of manufacturer CA certificates")
    ek.add_argument("--ek", metavar="EKPUB", help="the EK's TPM2B_PUBLIC/TPMT_PUBLIC: the certificate must be for it")
    ek.add_argument("--at", metavar="TIME", help="verification time (ISO 8601; default now)")
    add_json(ek)
    ek.set_defaults(func=_ek_check)


_T = TypeVar("_T")


def _read(path: str, what: str, parser: Callable[[bytes], _T]) -> _T:
    try:
        return parser(read_bytes(path, what=what))
    except FtrustError as e:
        raise e.with_file(path) from None


def _quote(path: str) -> Attest:
    return _read(path, "quote", parse_attest)


def _selection_text(s: PcrSelection) -> str:
    return f"{s.bank}:{','.join(map(str, s.pcrs)) or '(none)'}"


def _show(args: argparse.Namespace) -> int:
    attest = _quote(args.quote)
    doc = attest.to_json()

    def text() -> str:
        c = attest.clock_info
        rows = [
            ("magic", f"{doc['magic']}" + ("" if attest.magic_ok else "  (NOT TPM_GENERATED_VALUE)")),
            ("type", f"TPM_ST_{doc['type']}"),
            ("qualifiedSigner", doc["qualified_signer"]),
            ("extraData", doc["extra_data"] or "(empty)"),
            ("clock", f"{c.clock} ms"),
            ("resetCount", str(c.reset_count)),
            ("restartCount", str(c.restart_count)),
            ("safe", "yes" if c.safe else "no"),
            ("firmwareVersion", doc["firmware_version"]),
            ("PCR selection", " ".join(_selection_text(s) for s in attest.quote.selections) or "(none)"),
            ("pcrDigest", doc["pcr_digest"]),
            ("attest SHA-256", f"{doc['attest_sha256']} ({doc['attest_length']} bytes)"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)

    emit(args, doc, text)
    return int(ExitCode.OK)


def _pcrs(path: str, attest: Attest) -> dict[str, dict[int, bytes]]:
    data = read_bytes(path, what="PCR values")
    try:
        if data.lstrip()[:1] == b"{":
            try:
                doc = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                line = getattr(e, "lineno", None)
                raise ParseError(f"PCR values: not JSON ({e})", location=Location(path, line=line)) from None
            return pcrs_from_json(doc)
        return parse_pcr_file(data, attest.quote.selections)
    except FtrustError as e:
        raise e.with_file(path) from None


def _nonce(text: str) -> bytes:
    value = text.strip().lower().removeprefix("0x")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InputError(f"--nonce {text!r} is not hex", hint="give the qualifying data as hex; '' for none") from None


def _verify(args: argparse.Namespace) -> int:
    attest = _quote(args.quote)
    signature = _read(args.signature, "signature", parse_signature)
    ak = _read(args.ak, "attestation key", lambda b: load_key(b, "attestation key"))
    pcrs = _pcrs(args.pcrs, attest)
    nonce = _nonce(args.nonce)
    ima: ImaAppraisal | None = None
    if args.ima_log:
        banks = tuple(b for b in quoted_ima_banks(attest) if b in BANKS) or ("sha256",)
        ima = appraise_measurement_list(
            read_bytes(args.ima_log, what="measurement list"), banks=banks, source=args.ima_log
        )
    result = verify_quote(attest, signature, ak, pcrs, nonce, ima=ima)
    doc = {**result.to_json(), "pcrs": pcrs_to_json(pcrs)}
    if ima is not None:
        doc["ima"] = {"entries": ima.entry_count, "pcr10": dict(ima.state.pcr_values), "ok": ima.ok,
                      "findings": [f.to_json() for f in ima.findings]}  # fmt: skip

    def text() -> str:
        lines = [f"{f.level}: {f}" for f in result.findings]
        if ima is not None:
            lines += [f"ima {f.kind.value}: {f}" for f in ima.findings]
        verdict = "valid" if result.ok else f"NOT valid ({len(result.denials())} failed checks)"
        lines.append(f"{args.quote}: quote {verdict}; signed by {ak.describe()} ({signature.scheme.name.lower()}/"
                     f"{signature.hash}); PCRs {' '.join(_selection_text(s) for s in attest.quote.selections)}")  # fmt: skip
        if ima is not None and result.ima_bank:
            lines.append(
                f"PCR 10 ({result.ima_bank}) {pcrs[result.ima_bank][10].hex()}; IMA list {ima.entry_count} entries"
            )
        return "\n".join(lines)

    emit(args, doc, text)
    return int(ExitCode.OK if result.ok else ExitCode.DENIED)


def _ek_check(args: argparse.Namespace) -> int:
    cert = _read(args.ek_cert, "EK certificate", read_certificate)
    roots = read_roots_directory(args.roots)
    ek_public = _read(args.ek, "EK public area", parse_public) if args.ek else None
    at = clock.parse_time(args.at, what="--at") if args.at else clock.now()
    result = verify_ek_certificate(cert, roots, at=at, ek_public=ek_public)

    def text() -> str:
        lines = [f"note: {n}" for n in result.notes] + [f"deny: {r}" for r in result.reasons]
        if result.ok:
            chain = " <- ".join(c.subject.rfc4514_string() or "(EK, empty subject)" for c in result.chain)
            lines.append(f"{args.ek_cert}: EK certificate valid at {at.isoformat()}: {chain}")
        else:
            lines.append(f"{args.ek_cert}: EK certificate NOT valid")
        return "\n".join(lines)

    emit(args, {**result.to_json(), "at": at.isoformat()}, text)
    return int(ExitCode.OK if result.ok else ExitCode.DENIED)
