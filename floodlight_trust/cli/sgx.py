"""`ftrust sgx` commands: show and verify DCAP/EPID quotes, fetch collateral."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from pathlib import Path
from typing import Any

from floodlight_trust import clock
from floodlight_trust.claims import enclave_to_json
from floodlight_trust.cli.output import add_group, add_json, emit, load_config, table
from floodlight_trust.errors import FtrustError, InputError, Location, VerificationError
from floodlight_trust.evidence import dcap
from floodlight_trust.evidence.collateral import collateral_to_json
from floodlight_trust.evidence.sgx_quote import (
    SGX_EXTENSIONS_OID,
    EpidQuote,
    QuoteV3,
    ReportBody,
    parse_pck_extensions,
    parse_quote,
)
from floodlight_trust.fileio import atomic_write, read_bytes


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    p = sub.add_parser("show", help="decode a quote (DCAP v3 or EPID; raw, base64 or hex)")
    p.add_argument("quote", metavar="QUOTE", help="quote file")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("verify", help="verify a DCAP quote with collateral against the pinned Intel root")
    p.add_argument("quote", metavar="QUOTE", help="quote file")
    p.add_argument("--collateral", required=True, metavar="FILE|DIR", help="dcap-qvl collateral JSON, or a directory")
    p.add_argument("--at", metavar="TIME", help="verification time (ISO 8601; default now)")
    p.add_argument(
        "--unsafe-simulated-root",
        metavar="PEM",
        help="trust this SIMULATED root instead of Intel's (sgxsim quotes only; proves nothing)",
    )
    p.add_argument(
        "--unsafe-allow-expired-crls", action="store_true", help="report CRLs outside their window as warnings"
    )
    add_json(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("fetch-collateral", help="fetch a quote's collateral from PCS/PCCS (dcap-qvl JSON)")
    p.add_argument("quote", metavar="QUOTE", help="quote file (DCAP v3)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the collateral JSON")
    p.add_argument("--pcs", metavar="URL", help="PCS/PCCS base URL (default: config pcs.url)")
    add_json(p)
    p.set_defaults(func=cmd_fetch)


def read_quote(path: str) -> bytes:
    """A quote file: raw bytes, or base64 / hex text of them."""
    raw = read_bytes(path, what="quote file")
    if raw[:2] in (b"\x01\x00", b"\x02\x00", b"\x03\x00"):
        return raw
    text = raw.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return raw


def _parse(path: str) -> QuoteV3 | EpidQuote:
    try:
        return parse_quote(read_quote(path))
    except FtrustError as e:
        raise e.with_file(path) from None


def _report_json(r: ReportBody) -> dict[str, Any]:
    return {
        "cpu_svn": r.cpu_svn.hex(),
        "misc_select": r.misc_select,
        "attributes": r.attributes.hex(),
        "debug": r.debug,
        "mode64bit": r.mode64bit,
        "mrenclave": r.mr_enclave.hex(),
        "mrsigner": r.mr_signer.hex(),
        "isv_prod_id": r.isv_prod_id,
        "isv_svn": r.isv_svn,
        "config_id": r.config_id.hex(),
        "config_svn": r.config_svn,
        "isv_ext_prod_id": r.isv_ext_prod_id.hex(),
        "isv_family_id": r.isv_family_id.hex(),
        "report_data": r.report_data.hex(),
    }


def quote_json(q: QuoteV3 | EpidQuote) -> dict[str, Any]:
    if isinstance(q, EpidQuote):
        return {
            "type": "EPID",
            "version": q.version,
            "sign_type": "linkable" if q.sign_type else "unlinkable",
            "epid_group_id": q.epid_group_id[::-1].hex(),
            "qe_svn": q.qe_svn,
            "pce_svn": q.pce_svn,
            "signature_bytes": None if q.signature is None else len(q.signature),
            "report": _report_json(q.report),
        }
    from cryptography import x509

    pck: dict[str, Any] = {}
    try:
        leaf = x509.load_pem_x509_certificate(q.pck_chain_pem()[0])
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID)).value
        if not isinstance(ext, x509.UnrecognizedExtension):
            raise ValueError("the PCK certificate's SGX extension is not an opaque extension")
        e = parse_pck_extensions(ext.value)
        pck = {
            "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(),
            "fmspc": e.fmspc.hex(),
            "pce_id": e.pce_id.hex(),
            "pce_svn": e.pce_svn,
            "cpu_svn_components": list(e.cpu_svn_components),
        }
    except (ValueError, IndexError, x509.ExtensionNotFound, FtrustError) as err:
        pck = {"error": str(err)}
    return {
        "type": "DCAP",
        "version": q.version,
        "attestation_key_type": "ECDSA-P256",
        "qe_svn": q.qe_svn,
        "pce_svn": q.pce_svn,
        "qe_vendor_id": q.qe_vendor_id.hex(),
        "report": _report_json(q.report),
        "qe_report": _report_json(q.qe_report),
        "attestation_key": q.attestation_key.hex(),
        "qe_auth_data": q.qe_auth_data.hex(),
        "certification_data_type": q.cert_data_type,
        "pck_certificate": pck,
    }


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows.extend(_flat(v, f"{prefix}{k}."))
        else:
            rows.append((prefix + k, v))
    return rows


def cmd_show(args: argparse.Namespace) -> int:
    data = quote_json(_parse(args.quote))
    emit(args, data, lambda: table(("field", "value"), _flat(data)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    quote = read_quote(args.quote)
    at = clock.parse_time(args.at, what="--at") if args.at else clock.now()
    from floodlight_trust.clients.collateral_files import load_collateral

    collateral = load_collateral(args.collateral)
    if args.unsafe_simulated_root:
        anchor = dcap.TrustAnchor.unsafe_simulated(read_bytes(args.unsafe_simulated_root, what="simulated root"))
    else:
        anchor = dcap.TrustAnchor.intel()
    _parse(args.quote)  # a malformed quote is located in its file before any collateral is looked at
    try:
        result = dcap.verify_quote(
            quote, collateral, anchor, at=at, unsafe_allow_expired_crls=args.unsafe_allow_expired_crls
        )
    except VerificationError as e:
        raise e.with_file(args.quote) from None  # the quote is what failed; the message names the check
    except InputError as e:
        # After the quote parsed, malformed input is collateral (CRLs, chains, TCB info), except the
        # PCK chain the quote carries.
        raise e.with_file(args.quote if "in the quote" in str(e) else args.collateral) from None
    claims = enclave_to_json(result.claims)
    data = {"valid": True, "verified_at": clock.format_time(at), "claims": claims, "warnings": list(result.warnings)}

    def text() -> str:
        c = result.claims
        lines = [
            f"valid: DCAP quote verified at {clock.format_time(at)} against {anchor.name}",
            f"  TCB status: {c.tcb_status.value}" + (f" [{', '.join(c.advisory_ids)}]" if c.advisory_ids else ""),
            f"  QE identity: {c.qe_identity_status.value if c.qe_identity_status else '-'}",
            f"  MRENCLAVE {c.mrenclave}",
            f"  MRSIGNER  {c.mrsigner}",
            f"  ISVPRODID {c.isv_prod_id}  ISVSVN {c.isv_svn}  debug {str(c.debug).lower()}",
            f"  FMSPC {c.platform.fmspc}  PCK sha256 {c.platform.pck_certificate_sha256}",
        ]
        lines += [f"  warning: {w}" for w in result.warnings]
        return "\n".join(lines)

    emit(args, data, text)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from floodlight_trust.clients.pcs import PcsClient

    cfg = load_config(args)
    out = Path(args.out)
    if not out.parent.is_dir():  # before any network traffic
        raise InputError("output directory does not exist", location=Location(str(out.parent)))
    client = PcsClient(
        args.pcs or cfg.get("pcs", "url"),
        cache_dir=cfg.state_path("pcs", "cache_dir") if cfg.state_dir.is_dir() else None,
        timeout=float(cfg.get("pcs", "timeout_seconds")),
    )
    quote = read_quote(args.quote)
    try:
        parse_quote(quote)  # a malformed quote is the user's input error, located in its file
    except FtrustError as e:
        raise e.with_file(args.quote) from None
    collateral = client.collateral_for_quote(quote)
    doc = collateral_to_json(collateral)
    atomic_write(out, json.dumps(doc, indent=2) + "\n", mode=0o644)
    emit(args, {"out": str(out), "collateral_keys": sorted(doc)}, f"wrote collateral to {out}")
    return 0
