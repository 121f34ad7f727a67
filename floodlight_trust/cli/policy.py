"""`ftrust policy` commands: check, fmt, test, eval, generate."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from floodlight_trust.cli.output import add_group, add_json, emit, read_keyrings
from floodlight_trust.errors import ExitCode, FtrustError, InputError, Location, PolicyError

# The password of an encrypted --sign-key comes from this variable, never from argv.
SIGN_KEY_PASSWORD_ENV = "FTRUST_POLICY_SIGN_KEY_PASSWORD"  # noqa: S105 - a variable's name, not a password


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    p = sub.add_parser(
        "check",
        help="parse and check policy files; report every error with its location",
        description="Check each policy file (a directory: every *.policy file below it; '-': standard input) "
        "with its imports and reference lists; report every error at FILE:LINE:COL (exit 2).",
    )
    p.add_argument("files", nargs="+", metavar="POLICY", help="policy file, directory of *.policy files, or -")
    add_json(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "fmt",
        help="rewrite policy files in canonical form",
        description="Rewrite policy files in canonical form ('-': format standard input to standard output). "
        "--check and --diff change nothing and exit 1 when a file is not formatted.",
    )
    p.add_argument("files", nargs="+", metavar="POLICY", help="policy file, directory of *.policy files, or -")
    p.add_argument("--check", action="store_true", help="only report files that are not formatted (exit 1)")
    p.add_argument("--diff", action="store_true", help="print a unified diff instead of rewriting (exit 1 if any)")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("test", help="run policy test files (*.policytest.toml)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="test files or directories searched for them")
    p.add_argument("--coverage", action="store_true", help="list rules that no case saw deny")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    add_json(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser(
        "eval",
        help="evaluate claims or evidence against a policy (exit 0 allowed, 1 denied)",
        description="Judge a claims document (--claims) and/or evidence verified here as the Verification "
        "Manager verifies it (--ima-log, --quote with --collateral, --ias-report; they replace the document's "
        "ima / enclave parts). --vnf judges its enroll rule: host and enclave, both needed.",
    )
    p.add_argument("policy", metavar="POLICY", help="policy file, directory of *.policy files, or -")
    p.add_argument("--claims", metavar="FILE", help="claims document (JSON)")
    p.add_argument("--ima-log", metavar="LOG", help="IMA measurement list (binary or ASCII), appraised here")
    p.add_argument(
        "--keyring", metavar="CERT", action="append", default=[], help="certificate for ima-sig (repeatable)"
    )
    p.add_argument("--quote", metavar="FILE", help="DCAP quote, verified against the pinned Intel root")
    p.add_argument("--collateral", metavar="FILE|DIR", help="the quote's collateral (dcap-qvl JSON or a directory)")
    p.add_argument("--ias-report", metavar="DIR", help="IAS report directory (report.json and its two headers)")
    p.add_argument("--at", metavar="TIME", help="verification time (ISO 8601; default: now)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--host", metavar="NAME", help="host policy to apply to the claims' IMA list")
    target.add_argument("--enclave", metavar="NAME", help="enclave policy to apply to the claims' enclave")
    target.add_argument("--vnf", metavar="NAME", help="VNF name: apply its enroll rule's host and enclave policies")
    p.add_argument("--explain", action="store_true", help="show every rule evaluated and what it matched, and notes")
    add_json(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "generate",
        help="write a reference list (sha256sum, or a Keylime runtime policy) from a known-good host",
        description="Write every measured (path, digest) of a known-good host's IMA list: in sha256sum format "
        "(default), or as a Keylime runtime policy (--format keylime, as `keylime-policy create runtime`), "
        "optionally DSSE-signed with --sign-key (as `keylime-policy sign`; include it with verify_with).",
    )
    p.add_argument("--ima-log", required=True, metavar="LOG", help="IMA measurement list (binary or ASCII)")
    p.add_argument("--format", choices=("sha256sum", "keylime"), default="sha256sum", help="output format")
    p.add_argument(
        "--sign-key",
        metavar="KEY",
        help="PEM private key (ECDSA P-256 or RSA) to sign the Keylime policy with (DSSE); "
        f"an encrypted key's password is read from ${SIGN_KEY_PASSWORD_ENV}",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_generate)


# ---- check -----------------------------------------------------------------------------------


EXCERPT = 100  # longest source line shown under an error


def _source_line(loc: Location | None, cache: dict[str, list[str]]) -> str | None:
    if loc is None or not loc.file or not loc.line:
        return None
    if loc.file not in cache:
        try:
            cache[loc.file] = Path(loc.file).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            cache[loc.file] = []
    lines = cache[loc.file]
    if loc.line > len(lines):
        return None
    text = lines[loc.line - 1].rstrip("\n")
    column = max((loc.column or 1) - 1, 0)
    if len(text) > EXCERPT:  # a minified JSON line: a short excerpt around the column
        start = max(0, min(column - EXCERPT // 2, len(text) - EXCERPT))
        end = start + EXCERPT
        excerpt = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
        column = column - start + (1 if start else 0)
        text = excerpt
    return f"    {text}\n    {' ' * column}^"


def _errors_of(e: PolicyError) -> tuple[PolicyError, ...]:
    return tuple(getattr(e, "errors", (e,)))


def render_errors(e: PolicyError) -> str:
    cache: dict[str, list[str]] = {}
    out: list[str] = []
    for err in _errors_of(e):
        out.append(PolicyError.__str__(err))
        src = _source_line(err.location, cache)
        if src:
            out.append(src)
        if err.hint:
            out.append(f"    hint: {err.hint}")
    return "\n".join(out)


STDIN = "-"
STDIN_NAME = "<stdin>"


def policy_files(names: list[str]) -> list[str]:
    """The policy files named on the command line: a directory stands for every ``*.policy`` file
    below it (sorted), ``-`` for standard input (at most once)."""
    out: list[str] = []
    for name in names:
        if name == STDIN:
            if STDIN in out:
                raise InputError("standard input ('-') can be given only once")
            out.append(name)
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*.policy") if p.is_file())
            if not found:
                raise InputError("no *.policy files in this directory", location=Location(name))
            out.extend(found)
        else:
            out.append(name)
    return out


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read()


def parse_tables_file(package: Path | None = None) -> str | None:
    """Where lark may keep the policy parser's tables between commands (``policy_lang.parser.
    keep_tables_in``): beside the policy_lang package's bytecode, because the file is a pickle and
    ``__pycache__`` holds code already. Only a directory owned by the package directory's owner and
    writable by nobody else, and a file likewise; with bytecode writing off
    (``PYTHONDONTWRITEBYTECODE``) only a file that is there already (nothing is written)."""
    import sys

    if package is None:
        import policy_lang

        package = Path(policy_lang.__file__).resolve().parent
    directory = package / "__pycache__"
    path = directory / "policy_lang.parser.lark-cache"
    try:
        owner = package.stat().st_uid
        d = directory.stat()
        if d.st_uid != owner or d.st_mode & 0o022:
            return None
        f = path.stat()
        if f.st_uid != owner or f.st_mode & 0o022:
            return None
    except FileNotFoundError:
        if sys.dont_write_bytecode or not directory.is_dir():
            return None
    except OSError:
        return None
    return str(path)


def load_policy_arg(name: str) -> Any:
    """Load the policy a command names: a file, a directory (every ``*.policy`` file below it, as
    one policy) or ``-`` (standard input; imports and includes relative to the working directory)."""
    from floodlight_trust.policy_files import FILES, load_policy, load_policy_files
    from policy_lang.compile import compile_policy_bytes
    from policy_lang.parser import keep_tables_in

    keep_tables_in(parse_tables_file())

    if name == STDIN:
        return compile_policy_bytes(_read_stdin(), filename=STDIN_NAME, base_dir=Path.cwd(), sources=FILES)
    if Path(name).is_dir():
        return load_policy_files([Path(f) for f in policy_files([name])])
    return load_policy(name)


def cmd_check(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed = 0
    for name in policy_files(args.files):
        shown = STDIN_NAME if name == STDIN else name
        try:
            policy = load_policy_arg(name)
        except PolicyError as e:
            failed += 1
            errors = _errors_of(e)
            results.append(
                {
                    "file": shown,
                    "ok": False,
                    "errors": [
                        {"location": str(x.location or ""), "message": x.message, "hint": x.hint} for x in errors
                    ],
                }
            )
            if not args.json:
                print(render_errors(e), file=sys.stderr)
                print(f"{shown}: {len(errors)} error{'s' if len(errors) != 1 else ''}", file=sys.stderr)
            continue
        # Where the policy's silence means "anything goes" (policy_lang/lint.py): errors fail the check.
        from policy_lang.lint import open_ended
        from policy_lang.parser import PolicyErrors

        findings = open_ended(policy)
        open_errors = [f for f in findings if f.level == "error"]
        warnings = [f for f in findings if f.level != "error"]
        if open_errors:
            failed += 1
            results.append(
                {
                    "file": shown,
                    "ok": False,
                    "errors": [
                        {"location": str(f.location), "message": f.message, "hint": f.hint, "code": f.code}
                        for f in open_errors
                    ],
                    "warnings": [f.to_json() for f in warnings],
                }
            )
        else:
            results.append(
                {
                    "file": shown,
                    "ok": True,
                    "version": policy.version,
                    "hosts": policy.host_policies,
                    "enclaves": policy.enclave_policies,
                    "enroll": [r.name for r in policy.enrolls],
                    "warnings": [f.to_json() for f in warnings],
                }
            )
        if not args.json:
            if open_errors:
                print(render_errors(PolicyErrors([f.error() for f in open_errors])), file=sys.stderr)
            for w in warnings:
                print(
                    f"{w.location}: warning: {w.message}" + (f"\n    hint: {w.hint}" if w.hint else ""), file=sys.stderr
                )
            if open_errors:
                n = len(open_errors)
                print(f"{shown}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
                continue
            print(
                f"ok: {shown}: {len(policy.hosts)} host, {len(policy.enclaves)} enclave policies, "
                f"{len(policy.enrolls)} enroll rules; version {policy.version[:16]}"
                + (f"; {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else "")
            )
    if args.json:
        emit(args, results)
    return int(ExitCode.BAD_INPUT) if failed else 0


# ---- fmt -------------------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace) -> int:
    from floodlight_trust.fileio import atomic_write, read_text
    from policy_lang.fmt import format_text

    unformatted = 0
    for name in policy_files(args.files):
        stdin = name == STDIN
        shown = STDIN_NAME if stdin else name
        if stdin:
            try:
                text = _read_stdin().decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError("standard input is not UTF-8 text", location=Location(shown, offset=e.start)) from None
        else:
            text = read_text(name, what="policy file")
        formatted = format_text(text, shown)
        if stdin and not (args.check or args.diff):
            sys.stdout.write(formatted)  # a filter, as gofmt and opa fmt are on standard input
            continue
        if formatted == text:
            continue
        unformatted += 1
        if args.check:
            print(f"would reformat {shown}")
        if args.diff:
            import difflib

            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True), formatted.splitlines(keepends=True), shown, f"{shown} (formatted)"
                )
            )
        if not (args.check or args.diff):
            mode = Path(name).stat().st_mode & 0o777
            atomic_write(name, formatted, mode=mode)
            print(f"reformatted {shown}")
    if (args.check or args.diff) and unformatted:
        return int(ExitCode.DENIED)
    return 0


# ---- test ------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    from policy_lang.testing import format_report, result_json, run_tests

    report = run_tests(args.paths)
    if not report.results:
        raise InputError(
            "no policy test cases found",
            location=Location(" ".join(args.paths)),
            hint="test files are named *.policytest.toml",
        )
    emit(args, result_json(report), lambda: format_report(report, verbose=args.verbose, coverage=args.coverage))
    return int(ExitCode.DENIED) if report.failed else 0


# ---- eval ------------------------------------------------------------------------------------


def _claims_for_eval(args: argparse.Namespace) -> Any:
    """The claims ``eval`` judges: the --claims document, with its ima / enclave parts replaced by
    the evidence given, verified by :mod:`floodlight_trust.evidence.verify` (the VM's path)."""
    import dataclasses

    from floodlight_trust import clock
    from floodlight_trust.claims import ClaimSet, claimset_from_json
    from floodlight_trust.evidence.verify import Evidence, IasReportEvidence, verify_evidence
    from floodlight_trust.fileio import read_bytes

    if not (args.claims or args.ima_log or args.quote or args.ias_report):
        raise InputError("give --claims FILE and/or evidence: --ima-log, --quote with --collateral, --ias-report")
    if args.quote and not args.collateral:
        raise InputError("--quote needs --collateral FILE|DIR")
    if args.collateral and not args.quote:
        raise InputError("--collateral goes with --quote")
    if args.keyring and not args.ima_log:
        raise InputError("--keyring goes with --ima-log")
    base: ClaimSet | None = None
    if args.claims:
        try:
            doc = json.loads(read_bytes(args.claims, what="claims file"))
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e.msg}", location=Location(args.claims, e.lineno, e.colno)) from None
        try:
            base = claimset_from_json(doc)
        except InputError as e:
            raise e.with_file(args.claims) if not e.location else e from None
    at = clock.parse_time(args.at, what="--at") if args.at else (base.verified_at if base else clock.now())
    ias_report = None
    if args.ias_report:
        folder = Path(args.ias_report)
        ias_report = IasReportEvidence(
            *(
                read_bytes(folder / f, what="IAS report file")
                for f in ("report.json", "x-iasreport-signature.b64", "x-iasreport-signing-certificate.pem")
            )
        )
    evidence = Evidence(
        ima_log=read_bytes(args.ima_log, what="IMA measurement list") if args.ima_log else None,
        ima_source=args.ima_log,
        keyring=tuple(read_keyrings(args.keyring)),
        quote=read_bytes(args.quote, what="quote") if args.quote else None,
        collateral=_collateral(args.collateral) if args.collateral else None,
        ias_report=ias_report,
    )
    verified = verify_evidence(evidence, at=at)  # a VerificationError is exit 1 with its message
    if base is None:
        return verified
    return dataclasses.replace(
        base,
        verified_at=at,
        ima=verified.ima if verified.ima is not None else base.ima,
        enclave=verified.enclave if verified.enclave is not None else base.enclave,
    )


def _collateral(path: str) -> Any:
    from floodlight_trust.clients.collateral_files import load_collateral  # only with --quote: a fresh process's import

    return load_collateral(path)


def cmd_eval(args: argparse.Namespace) -> int:
    from policy_lang import Decision

    policy = load_policy_arg(args.policy)
    claims = _claims_for_eval(args)
    judged: list[tuple[str, str, Decision]] = []  # (kind, policy name, decision)
    enroll_rule: str | None = None
    if args.host:
        target = {"kind": "host", "name": args.host}
        judged.append(("host", args.host, policy.evaluate_host(args.host, claims)))
    elif args.enclave:
        target = {"kind": "enclave", "name": args.enclave}
        judged.append(("enclave", args.enclave, policy.evaluate_enclave(args.enclave, claims)))
    else:
        vnf = args.vnf or claims.subject
        if not vnf:
            raise InputError("say which policy: --host, --enclave or --vnf", location=Location(args.policy))
        target = {"kind": "vnf", "name": vnf}
        enroll = policy.evaluate_enroll(vnf, claims)
        rule = policy.enroll_rule(vnf)
        assert rule is not None
        enroll_rule = enroll.rule
        judged.append(("host", rule.host_policy, enroll.host))
        judged.append(("enclave", rule.enclave_policy, enroll.enclave))
    allowed = all(d.allowed for _, _, d in judged)
    traces = [
        (policy.trace_host if kind == "host" else policy.trace_enclave)(name, claims, d) if args.explain else ()
        for kind, name, d in judged
    ]

    def text() -> str:
        out: list[str] = []
        if enroll_rule is not None:
            out.append(f"{'allowed' if allowed else 'denied'}: enroll {enroll_rule} for {target['name']}")
        for (kind, _, d), trace in zip(judged, traces, strict=True):
            out.append(
                f"{'allowed' if d.allowed else 'denied'}: {kind} {d.policy} (policy version {d.policy_version[:16]})"
            )
            for step in trace:
                out.append(f"  {step.outcome:<4}  {step.location}: {step.rule}: {step.detail}")
            for r in d.reasons:
                if r.level != "deny" and not args.explain:
                    continue
                out.append(f"  {r.location}: {r.rule}: {r.message}" + ("" if r.level == "deny" else " [note]"))
                if args.explain and r.evidence:
                    out.append("      evidence: " + json.dumps(r.to_json()["evidence"], sort_keys=True))
        return "\n".join(out)

    data = {
        "allowed": allowed,
        "target": target,
        "enroll_rule": enroll_rule,
        "policy_version": policy.version,
        "decisions": [
            {"kind": kind, **d.to_json(), "trace": [s.to_json() for s in trace]}
            for (kind, _, d), trace in zip(judged, traces, strict=True)
        ],
    }
    emit(args, data, text)
    return 0 if allowed else int(ExitCode.DENIED)


# ---- generate --------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    import os

    from floodlight_trust.fileio import atomic_write, read_bytes
    from policy_lang.reference import generate_keylime_policy, generate_reference_list, sign_dsse_envelope

    if args.sign_key and args.format != "keylime":
        raise InputError("--sign-key signs a Keylime runtime policy: add --format keylime")
    data = read_bytes(args.ima_log, what="IMA measurement list")
    try:
        ima = importlib.import_module("floodlight_trust.evidence.ima")
    except ImportError:
        raise InputError("the IMA parser (floodlight_trust.evidence.ima) is not installed") from None
    try:
        claims = ima.appraise_measurement_list(data).claims
    except FtrustError as e:
        raise e.with_file(args.ima_log) from None
    if args.format == "sha256sum":
        text = generate_reference_list(claims)
        summary = f"{text.count(chr(10))} entries"
    else:
        text, skipped = generate_keylime_policy(claims)
        doc = json.loads(text)
        summary = f"a Keylime runtime policy of {len(doc['digests'])} files" + (
            f" ({skipped} entries with digests shorter than Keylime's schema allows left out)" if skipped else ""
        )
        if args.sign_key:
            password = os.environ.get(SIGN_KEY_PASSWORD_ENV)
            try:
                text = sign_dsse_envelope(
                    text.encode("utf-8"),
                    read_bytes(args.sign_key, what="signing key"),
                    password.encode("utf-8") if password else None,
                )
            except PolicyError as e:
                raise InputError(e.message, location=Location(args.sign_key)) from None
            summary += ", DSSE-signed"
    if args.output:
        atomic_write(args.output, text, mode=0o644)
        print(f"wrote {summary} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
