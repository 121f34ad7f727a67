"""Policy tests: named cases (claims -> expected decision and reasons), run by ``ftrust policy test``
and collected by the pytest plugin (:mod:`policy_lang.pytest_plugin`).

A test file is TOML named ``*.policytest.toml``::

    policy = "../floodlight.policy"          # relative to the test file

    [[case]]
    name = "an unknown binary is refused and named"
    host = "container_host"                 # or enclave = "...", or vnf = "vnf-firewall-1"
    claims = "fixtures/host-clean.json"     # a claims document (JSON, floodlight_trust.claims form)
    add_ima = [{ path = "/usr/bin/xyz", digest = "ab12..." }]   # optional: append IMA entries
    set = { "enclave.isv_svn" = 3 }         # optional: override fields of the claims document
    expect = "deny"                         # or "allow"
    reasons = ["allowlist: unknown file /usr/bin/xyz"]

Each expected reason must be a substring of ``"RULE: MESSAGE"`` of a distinct failure, and a denied
case must list every failure (so a test notices a new reason appearing).
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floodlight_trust.claims import claimset_from_json
from floodlight_trust.errors import FtrustError, InputError, Location, PolicyError
from floodlight_trust.fileio import read_bytes, read_text
from policy_lang.compile import Policy, load_policy
from policy_lang.evaluate import Decision, Reason

TEST_SUFFIX = ".policytest.toml"
CASE_KEYS = {"name", "host", "enclave", "vnf", "claims", "add_ima", "set", "expect", "reasons"}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    target_kind: str  # host, enclave, vnf
    target: str
    claims: dict[str, Any]
    expect_allowed: bool
    reasons: tuple[str, ...]
    location: str  # "file: case N"


@dataclass(frozen=True, slots=True)
class TestFile:
    path: Path
    policy: Policy
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    case: Case
    passed: bool
    problems: tuple[str, ...]
    decision: Decision | None


@dataclass(slots=True)
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    uncovered: list[tuple[str, str, str]] = field(default_factory=list)  # (policy, rule, location)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed


def _set_path(doc: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    parts = dotted.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise InputError(f"{where}: set {dotted!r}: no item {part!r}") from None
            continue
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"{where}: set {dotted!r}: no field {part!r} in the claims")
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InputError(f"{where}: set {dotted!r}: cannot set a field of a {type(node).__name__}")


def load_test_file(path: Path) -> TestFile:
    """Read a test file, its policy and its claims fixtures. Errors are located InputErrors."""
    name = str(path)
    try:
        doc = tomllib.loads(read_text(path, what="policy test file"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", location=Location(name)) from None
    if not isinstance(doc.get("policy"), str):
        raise InputError('missing policy = "FILE"', location=Location(name))
    policy = load_policy(path.parent / doc["policy"])
    cases: list[Case] = []
    raw_cases = doc.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise InputError("no [[case]] entries", location=Location(name))
    fixtures: dict[str, dict[str, Any]] = {}
    for n, raw in enumerate(raw_cases, start=1):
        where = f"{name}: case {n}"
        unknown = set(raw) - CASE_KEYS
        if unknown:
            raise InputError(
                f"{where}: unknown key {sorted(unknown)[0]!r}", hint="keys: " + ", ".join(sorted(CASE_KEYS))
            )
        targets = [k for k in ("host", "enclave", "vnf") if k in raw]
        if len(targets) != 1:
            raise InputError(f"{where}: name exactly one of host, enclave or vnf")
        if raw.get("expect") not in ("allow", "deny"):
            raise InputError(f'{where}: expect must be "allow" or "deny"')
        claims_name = raw.get("claims")
        if not isinstance(claims_name, str):
            raise InputError(f'{where}: missing claims = "FILE.json"')
        if claims_name not in fixtures:
            fixture_path = path.parent / claims_name
            try:
                fixtures[claims_name] = json.loads(read_bytes(fixture_path, what="claims fixture"))
            except json.JSONDecodeError as e:
                raise InputError(
                    f"not valid JSON: {e.msg}", location=Location(str(fixture_path), e.lineno, e.colno)
                ) from None
        claims = copy.deepcopy(fixtures[claims_name])
        for dotted, value in (raw.get("set") or {}).items():
            _set_path(claims, dotted, value, where)
        for entry in raw.get("add_ima") or []:
            ima = claims.setdefault("ima", {"entries": []})
            ima["entries"].append({"template": "ima-ng", "digest_algorithm": "sha256", "signature": "none", **entry})
        reasons = raw.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise InputError(f"{where}: reasons is a list of strings")
        cases.append(
            Case(
                name=str(raw.get("name") or f"case {n}"),
                target_kind=targets[0],
                target=str(raw[targets[0]]),
                claims=claims,
                expect_allowed=raw["expect"] == "allow",
                reasons=tuple(reasons),
                location=where,
            )
        )
    return TestFile(path, policy, tuple(cases))


def evaluate_case(policy: Policy, case: Case) -> Decision:
    claims = claimset_from_json(case.claims, where=f"{case.location}: claims")
    if case.target_kind == "host":
        return policy.evaluate_host(case.target, claims)
    if case.target_kind == "enclave":
        return policy.evaluate_enclave(case.target, claims)
    rule = policy.enroll_rule(case.target)
    if rule is None:
        raise PolicyError(f"{case.location}: no enroll rule matches VNF {case.target!r}")
    decision = policy.evaluate_enclave(rule.enclave_policy, claims)
    if claims.ima is not None:
        host = policy.evaluate_host(rule.host_policy, claims)
        decision = Decision(
            decision.allowed and host.allowed, f"enroll {rule.name}", policy.version, host.reasons + decision.reasons
        )
    return decision


def _describe(r: Reason) -> str:
    return f"{r.rule}: {r.message}"


def run_case(test: TestFile, case: Case) -> CaseResult:
    try:
        decision = evaluate_case(test.policy, case)
    except FtrustError as e:
        return CaseResult(str(test.path), case, False, (f"error: {e}",), None)
    problems: list[str] = []
    if decision.allowed != case.expect_allowed:
        problems.append(
            f"expected {'allow' if case.expect_allowed else 'deny'}, got {'allow' if decision.allowed else 'deny'}"
        )
    failures = [_describe(r) for r in decision.failures]
    unmatched = list(failures)
    for want in case.reasons:
        hit = next((f for f in unmatched if want in f), None)
        if hit is None:
            problems.append(f"expected a reason containing {want!r}")
        else:
            unmatched.remove(hit)
    if not case.expect_allowed and unmatched and not problems:
        problems.extend(f"unexpected reason: {u}" for u in unmatched)
    if problems and failures:
        problems.append("actual reasons: " + " | ".join(failures))
    return CaseResult(str(test.path), case, not problems, tuple(problems), decision)


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob("*" + TEST_SUFFIX)))
        elif p.exists():
            found.append(p)
        else:
            raise InputError("no such file or directory", location=Location(str(p)))
    return found


def run_tests(paths: Iterable[str | Path]) -> TestReport:
    """Run every case of every test file under ``paths``; compute rule coverage."""
    report = TestReport()
    denied_by: set[tuple[str, str]] = set()  # (location, rule) that some case saw deny
    all_rules: dict[tuple[str, str], tuple[str, str, str]] = {}
    for path in find_test_files(paths):
        test = load_test_file(path)
        for policy_name, rule, location in test.policy.rules():
            all_rules.setdefault((location, rule), (policy_name, rule, location))
        for case in test.cases:
            result = run_case(test, case)
            report.results.append(result)
            if result.decision is not None:
                denied_by.update((r.location, r.rule) for r in result.decision.failures)

    # A rule is covered when some case shows it denying; the allowlist/debug checks report at the
    # policy's own location, which is how they are keyed too.
    def order(key: tuple[str, str]) -> tuple[str, int, str]:
        file, _, line = key[0].rpartition(":")
        return (file, int(line) if line.isdigit() else 0, key[1])

    report.uncovered = [all_rules[k] for k in sorted(all_rules, key=order) if k not in denied_by]
    return report


def format_report(report: TestReport, *, verbose: bool = False, coverage: bool = False) -> str:
    lines: list[str] = []
    for r in report.results:
        if r.passed:
            if verbose:
                lines.append(f"PASS {r.file}: {r.case.name}")
            continue
        lines.append(f"FAIL {r.file}: {r.case.name}")
        lines.extend(f"    {p}" for p in r.problems)
    if coverage:
        if report.uncovered:
            lines.append("rules no case saw deny:")
            lines.extend(f"    {loc}: {policy}.{rule}" for policy, rule, loc in report.uncovered)
        else:
            lines.append("coverage: every rule was seen denying by some case")
    lines.append(f"{report.passed} passed, {report.failed} failed")
    return "\n".join(lines)


def result_json(report: TestReport) -> Mapping[str, Any]:
    return {
        "passed": report.passed,
        "failed": report.failed,
        "results": [
            {"file": r.file, "case": r.case.name, "passed": r.passed, "problems": list(r.problems)}
            for r in report.results
        ],
        "uncovered": [{"policy": p, "rule": n, "location": loc} for p, n, loc in report.uncovered],
    }
