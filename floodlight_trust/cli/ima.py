"""`ftrust ima` commands: show, replay and verify an IMA measurement list (ASCII or binary)."""

from __future__ import annotations

import argparse
from typing import Any

from floodlight_trust.claims import ima_to_json
from floodlight_trust.cli.output import add_group, add_json, emit, read_keyrings, table
from floodlight_trust.errors import InputError, VerificationError
from floodlight_trust.evidence.ima import ImaAppraisal, appraise_measurement_list
from floodlight_trust.evidence.ima.templates import BANKS
from floodlight_trust.fileio import read_bytes


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    show = sub.add_parser("show", help="list the entries of a measurement list", description="List the entries.")
    show.add_argument("log", metavar="LOG", help="ascii_ or binary_runtime_measurements file")
    add_json(show)
    show.set_defaults(func=_show)

    replay = sub.add_parser("replay", help="replay PCR 10 from a measurement list", description="Replay PCR 10.")
    replay.add_argument("log", metavar="LOG", help="ascii_ or binary_runtime_measurements file")
    replay.add_argument("--bank", choices=BANKS, default="sha256", help="PCR bank (default sha256)")
    replay.add_argument("--expect", metavar="HEX", help="exit 1 unless PCR 10 replays to this value")
    add_json(replay)
    replay.set_defaults(func=_replay)

    verify = sub.add_parser(
        "verify",
        help="check every template hash, signatures and optional PCR 10 values",
        description="Check every template hash (exit 1 naming the first bad entry), signatures against "
        "--keyring certificates or public keys and PCR 10 against --expect-pcr values.",
    )
    verify.add_argument("log", metavar="LOG", help="ascii_ or binary_runtime_measurements file")
    verify.add_argument(
        "--expect-pcr", metavar="BANK=HEX", action="append", default=[], help="expected PCR 10 value (repeatable)"
    )
    verify.add_argument(
        "--keyring", metavar="CERT", nargs="+", default=[], help="X.509 certificates or public keys (PEM or DER)"
    )
    add_json(verify)
    verify.set_defaults(func=_verify)


def _appraise(path: str, **kwargs: Any) -> ImaAppraisal:
    return appraise_measurement_list(read_bytes(path, what="measurement list"), source=path, **kwargs)


def _show(args: argparse.Namespace) -> int:
    a = _appraise(args.log)
    rows = [
        (
            e.index,
            e.template,
            f"{e.digest_algorithm}:{e.digest}",
            e.signature.value,
            e.path + (" (violation)" if e.violation else ""),
        )
        for e in a.claims.entries()
    ]

    def text() -> str:
        lines = [table(("#", "template", "digest", "signature", "path"), rows)]
        lines += [f"{f.kind.value}: {f}" for f in a.findings]
        return "\n".join(lines)

    emit(args, {**ima_to_json(a.claims), "ok": a.ok, "findings": [f.to_json() for f in a.findings]}, text)
    return 0


def _replay(args: argparse.Namespace) -> int:
    expected = {args.bank: _hex(args.expect, "--expect")} if args.expect else None
    a = _appraise(args.log, banks=(args.bank,), expected_pcrs=expected)
    value = a.claims.pcr_values[args.bank]
    emit(args, {"bank": args.bank, "pcr": 10, "value": value, "entries": a.entry_count}, value)
    _fail_on(a)
    return 0


def _verify(args: argparse.Namespace) -> int:
    expected: dict[str, str] = {}
    for item in args.expect_pcr:
        bank, sep, value = item.partition("=")
        if not sep or bank not in BANKS:
            raise InputError(f"--expect-pcr {item!r}: expected BANK=HEX with BANK one of {', '.join(BANKS)}")
        expected[bank] = _hex(value, f"--expect-pcr {bank}")
    keyring = read_keyrings(args.keyring)
    banks = tuple(dict.fromkeys(("sha1", "sha256", *expected)))
    a = _appraise(args.log, banks=banks, keyring=keyring, expected_pcrs=expected)
    counts: dict[str, int] = {}
    for status in a.claims.signatures:
        counts[status.value] = counts.get(status.value, 0) + 1

    def text() -> str:
        lines = [f"{f.kind.value}: {f}" for f in a.findings]
        lines.append(f"{args.log}: {a.entry_count} entries, template hashes {'ok' if a.ok else 'NOT ok'}")
        lines += [f"PCR 10 {bank}: {value}" for bank, value in a.claims.pcr_values.items()]
        lines.append("signatures: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return "\n".join(lines)

    emit(
        args,
        {
            "ok": a.ok,
            "entries": a.entry_count,
            "pcr_values": dict(a.claims.pcr_values),
            "signatures": counts,
            "findings": [f.to_json() for f in a.findings],
        },
        text,
    )
    _fail_on(a)
    return 0


def _fail_on(a: ImaAppraisal) -> None:
    problem = a.first_problem()
    if problem is not None:
        raise VerificationError(problem.message, location=problem.location)


def _hex(value: str, what: str) -> str:
    value = value.lower().removeprefix("0x")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise InputError(f"{what}: {value!r} is not hex") from None
    return value
