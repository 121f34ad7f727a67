"""`ftrust policy` commands: check, fmt, test, eval, generate."""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from floodlight_trust.cli.output import add_group, add_json, emit
from floodlight_trust.errors import ExitCode, FtrustError, InputError, Location, PolicyError


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

    p = sub.add_parser("eval", help="evaluate claims against a policy (exit 0 allowed, 1 denied)")
    p.add_argument("policy", metavar="POLICY")
    p.add_argument("--claims", required=True, metavar="FILE", help="claims document (JSON)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--host", metavar="NAME", help="host policy to apply to the claims' IMA list")
    target.add_argument("--enclave", metavar="NAME", help="enclave policy to apply to the claims' enclave")
    target.add_argument("--vnf", metavar="NAME", help="VNF name: apply its enroll rule's policies")
    p.add_argument("--explain", action="store_true", help="also print notes and the evidence of each reason")
    add_json(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="write a reference list (sha256sum format) from a known-good host")
    p.add_argument("--ima-log", required=True, metavar="LOG", help="IMA measurement list (binary or ASCII)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_generate)


# ---- check -----------------------------------------------------------------------------------


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
    caret = " " * max((loc.column or 1) - 1, 0) + "^"
    return f"    {text}\n    {caret}"


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


def load_policy_arg(name: str) -> Any:
    """Load the policy a command names: a file, a directory (every ``*.policy`` file below it, as
    one policy) or ``-`` (standard input; imports and includes relative to the working directory)."""
    from policy_lang.compile import compile_policy_bytes, load_policy, load_policy_files

    if name == STDIN:
        return compile_policy_bytes(_read_stdin(), filename=STDIN_NAME, base_dir=Path.cwd())
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
        results.append(
            {
                "file": shown,
                "ok": True,
                "version": policy.version,
                "hosts": policy.host_policies,
                "enclaves": policy.enclave_policies,
                "enroll": [r.name for r in policy.enrolls],
            }
        )
        if not args.json:
            print(
                f"ok: {shown}: {len(policy.hosts)} host, {len(policy.enclaves)} enclave policies, "
                f"{len(policy.enrolls)} enroll rules; version {policy.version[:16]}"
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


def cmd_eval(args: argparse.Namespace) -> int:
    from floodlight_trust.claims import claimset_from_json
    from floodlight_trust.fileio import read_bytes
    from policy_lang import Decision

    policy = load_policy_arg(args.policy)
    try:
        doc = json.loads(read_bytes(args.claims, what="claims file"))
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg}", location=Location(args.claims, e.lineno, e.colno)) from None
    try:
        claims = claimset_from_json(doc)
    except InputError as e:
        raise e.with_file(args.claims) if not e.location else e from None
    decisions: list[Decision] = []
    if args.host:
        decisions.append(policy.evaluate_host(args.host, claims))
    elif args.enclave:
        decisions.append(policy.evaluate_enclave(args.enclave, claims))
    else:
        vnf = args.vnf or claims.subject
        rule = policy.enroll_rule(vnf) if vnf else None
        if rule is None:
            raise InputError(
                f"no enroll rule matches {vnf!r}" if vnf else "say which policy: --host, --enclave or --vnf",
                location=Location(args.policy),
            )
        if claims.ima is not None:
            decisions.append(policy.evaluate_host(rule.host_policy, claims))
        decisions.append(policy.evaluate_enclave(rule.enclave_policy, claims))
    allowed = all(d.allowed for d in decisions)

    def text() -> str:
        out: list[str] = []
        for d in decisions:
            out.append(f"{'allowed' if d.allowed else 'denied'}: {d.policy} (policy version {d.policy_version[:16]})")
            for r in d.reasons:
                if r.level != "deny" and not args.explain:
                    continue
                out.append(f"  {r.location}: {r.rule}: {r.message}" + ("" if r.level == "deny" else " [note]"))
                if args.explain and r.evidence:
                    out.append("      evidence: " + json.dumps(dict(r.evidence), default=_jsonable, sort_keys=True))
        return "\n".join(out)

    data = (
        decisions[0].to_json()
        if len(decisions) == 1
        else {"allowed": allowed, "decisions": [d.to_json() for d in decisions]}
    )
    emit(args, data, text)
    return 0 if allowed else int(ExitCode.DENIED)


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    return str(value)


# ---- generate --------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from floodlight_trust.fileio import atomic_write, read_bytes
    from policy_lang.reference import generate_reference_list

    data = read_bytes(args.ima_log, what="IMA measurement list")
    try:
        ima = importlib.import_module("floodlight_trust.evidence.ima")
    except ImportError:
        raise InputError("the IMA parser (floodlight_trust.evidence.ima) is not installed") from None
    try:
        claims = ima.appraise_measurement_list(data).claims
    except FtrustError as e:
        raise e.with_file(args.ima_log) from None
    text = generate_reference_list(claims)
    if args.output:
        atomic_write(args.output, text, mode=0o644)
        print(f"wrote {text.count(chr(10))} entries to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
