"""`ftrust ias` commands: verify an Intel Attestation Service report."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from floodlight_trust import clock
from floodlight_trust.claims import enclave_to_json
from floodlight_trust.cli.output import add_group, add_json, emit
from floodlight_trust.cli.sgx import read_quote
from floodlight_trust.errors import InputError, Location, VerificationError
from floodlight_trust.evidence import ias
from floodlight_trust.fileio import read_bytes


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)
    p = sub.add_parser(
        "verify-report",
        help="verify a report: DIR (report.json, x-iasreport-signature.b64, x-iasreport-signing-certificate.pem)"
        " or --report/--signature/--cert",
    )
    p.add_argument("dir", nargs="?", metavar="DIR", help="directory holding the report and its two headers")
    p.add_argument("--report", metavar="F", help="the exact response body")
    p.add_argument("--signature", metavar="F", help="X-IASReport-Signature (base64)")
    p.add_argument("--cert", metavar="F", help="X-IASReport-Signing-Certificate (PEM, may be URL-encoded)")
    p.add_argument("--nonce", metavar="N", help="the nonce sent with the quote")
    p.add_argument("--quote", metavar="F", help="the quote submitted (its body must be in the report)")
    p.add_argument("--at", metavar="TIME", help="verification time (ISO 8601; default now)")
    p.add_argument("--max-age", type=int, metavar="SECONDS", help="refuse reports older than this")
    p.add_argument("--anchor", metavar="F", help="report signing CA to pin (default: Intel's, embedded)")
    add_json(p)
    p.set_defaults(func=cmd_verify_report)


def cmd_verify_report(args: argparse.Namespace) -> int:
    if args.dir:
        if args.report or args.signature or args.cert:
            raise InputError("give DIR or --report/--signature/--cert, not both")
        d = Path(args.dir)
        if not d.is_dir():
            raise InputError(
                "IAS report directory not found",
                location=Location(str(d)),
                hint="give a directory, or --report/--signature/--cert",
            )
        files = (d / "report.json", d / "x-iasreport-signature.b64", d / "x-iasreport-signing-certificate.pem")
    elif args.report and args.signature and args.cert:
        files = (Path(args.report), Path(args.signature), Path(args.cert))
    else:
        raise InputError("give DIR, or all of --report, --signature and --cert")
    body = read_bytes(files[0], what="IAS report")
    signature = read_bytes(files[1], what="report signature")
    cert = read_bytes(files[2], what="report signing certificate")
    anchor = read_bytes(args.anchor, what="IAS anchor") if args.anchor else ias.report_signing_ca()
    at = clock.parse_time(args.at, what="--at") if args.at else clock.now()
    quote = read_quote(args.quote) if args.quote else None
    try:
        result = ias.verify_report(
            body,
            signature,
            cert,
            anchor,
            at=at,
            nonce=args.nonce,
            quote=quote,
            max_age=timedelta(seconds=args.max_age) if args.max_age is not None else None,
        )
    except (InputError, VerificationError) as e:
        # Malformed input is located in the file it came from; a failed check at the report.
        blamed = files[0]
        if isinstance(e, InputError) and "certificate" in e.message:
            blamed = files[2]
        elif isinstance(e, InputError) and "Signature" in e.message:
            blamed = files[1]
        raise e.with_file(str(blamed)) from None
    c = result.claims
    data = {
        "valid": True,
        "verified_at": clock.format_time(at),
        "report_id": result.report.id,
        "claims": enclave_to_json(c),
    }
    emit(
        args,
        data,
        lambda: "\n".join(
            [
                f"valid: IAS report {result.report.id} of {clock.format_time(result.report.timestamp)}",
                f"  status: {result.report.status} -> {c.tcb_status.value}"
                + (f" [{', '.join(c.advisory_ids)}]" if c.advisory_ids else ""),
                f"  MRENCLAVE {c.mrenclave}",
                f"  MRSIGNER  {c.mrsigner}",
                f"  debug {str(c.debug).lower()}  EPID group {c.platform.epid_group_id}",
            ]
        ),
    )
    return 0
