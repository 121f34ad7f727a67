"""Policy tests: named cases (claims -> expected decision and reasons), run by ``ftrust policy test``
and collected by the pytest plugin (:mod:`policy_lang.pytest_plugin`).

A test file is TOML named ``*.policytest.toml``::

    policy = "../floodlight.policy"          # relative to the test file

    [[case]]
    name = "an unknown binary is refused and named"
    host = "container_host"                 # or enclave = "...", or vnf = "vnf-firewall-1"
    claims = "fixtures/host-clean.json"     # a claims document (JSON, floodlight_trust.claims form)
    # ... and/or evidence fixtures, verified here and turned into claims (they replace the
    # document's ima / enclave parts):
    ima_log = "fixtures/host.log"           # IMA measurement list (binary or ASCII), appraised
    keyring = ["fixtures/ima-key.pem"]      # optional: certificates for ima-sig signatures
    quote = "fixtures/sgx_quote"            # DCAP quote, verified against the Intel root ...
    collateral = "fixtures/collateral.json" # ... with this collateral (dcap-qvl JSON or a directory)
    ias_report = "fixtures/ias-ok"          # or an IAS report directory (report.json + headers)
    at = "2025-06-20T00:00:00Z"             # verification time (required with quote / ias_report)
    add_ima = [{ path = "/usr/bin/xyz", digest = "ab12..." }]   # optional: append IMA entries
    set = { "enclave.isv_svn" = 3 }         # optional: override fields of the claims document
    expect = "deny"                         # or "allow"
    reasons = ["allowlist: unknown file /usr/bin/xyz"]

Each expected reason must be a substring of ``"RULE: MESSAGE"`` of a distinct failure, and a denied
case must list every failure (so a test notices a new reason appearing).

Evidence that does not verify (a bad signature, collateral for another platform, expired
collateral) is what the Verification Manager refuses: the case's decision is then a denial with
the reason ``evidence: MESSAGE``. A missing or malformed fixture is an error located in the test file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floodlight_trust.claims import (
    ClaimSet,
    EnclaveClaims,
    ImaEntry,
    PlatformIdentity,
    claimset_from_json,
    claimset_to_json,
)
from floodlight_trust.clock import format_time
from floodlight_trust.errors import FtrustError, InputError, Location, VerificationError
from floodlight_trust.fileio import read_bytes, read_text
from floodlight_trust.policy_files import load_policy
from floodlight_trust.reasons import Reason
from policy_lang.compile import Policy
from policy_lang.evaluate import Decision

TEST_SUFFIX = ".policytest.toml"
CASE_KEYS = {
    "name",
    "host",
    "enclave",
    "vnf",
    "claims",
    "ima_log",
    "keyring",
    "quote",
    "collateral",
    "ias_report",
    "at",
    "unsafe_allow_expired_crls",
    "add_ima",
    "set",
    "expect",
    "reasons",
}
EVIDENCE_KEYS = ("ima_log", "quote", "ias_report")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    target_kind: str  # host, enclave, vnf
    target: str
    claims: dict[str, Any]
    expect_allowed: bool
    reasons: tuple[str, ...]
    location: str  # "file: case N"
    evidence_failure: str | None = None  # the evidence fixture did not verify (a denial)


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


def _names(cls: Any, *, without: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.name not in without)


# The fields of the claims document (floodlight_trust.claims' JSON form), by dotted parent path
# ("*" for a list item), so that a misspelt `set` key is an error, not a new field nobody reads.
CLAIM_FIELDS: Mapping[str, frozenset[str]] = {
    "": frozenset(("verified_at", "subject", "ima", "enclave")),
    "ima": frozenset(("first_index", "boot_aggregate", "pcr_values", "log_hash_algorithm", "entries")),
    "ima.entries.*": _names(ImaEntry, without=("index",)),
    "enclave": _names(EnclaveClaims),
    "enclave.platform": _names(PlatformIdentity),
}
IMA_ENTRY_KEYS = CLAIM_FIELDS["ima.entries.*"]
TOP_KEYS = ("policy", "case")


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _set_path(doc: dict[str, Any], dotted: str, value: Any, where: Location) -> None:
    parts = dotted.split(".")
    node: Any = doc
    parent: list[str] = []

    def fail(message: str, hint: str | None = None) -> InputError:
        return InputError(f"set {dotted!r}: {message}", location=where, hint=hint)

    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if isinstance(node, list):
            try:
                index = int(part)
                node[index]
            except (ValueError, IndexError):
                raise fail(f"no item {part!r} ({len(node)} items)") from None
            if last:
                node[index] = value
                return
            node = node[index]
            parent.append("*")
            continue
        if not isinstance(node, dict):
            raise fail(f"cannot set a field of a {type(node).__name__}")
        known = CLAIM_FIELDS.get(".".join(parent), frozenset(node))
        if part not in known:
            raise fail(
                f"no claim field {part!r} in {'.'.join(parent) or 'the claims'}",
                _did_you_mean(part, known) or "fields: " + ", ".join(sorted(known)),
            )
        if last:
            node[part] = value
            return
        if part not in node or node[part] is None:
            raise fail(f"the claims have no {'.'.join((*parent, part))} to set a field in")
        node = node[part]
        parent.append(part)


def _key_location(text: str, file: str, key: str) -> Location:
    """Where a top-level key is written (before the first table)."""
    for i, line in enumerate(text.split("\n")):
        stripped = line.lstrip()
        if stripped.startswith("["):
            break
        if stripped.startswith(key) and stripped[len(key) :].lstrip().startswith("="):
            return Location(file, i + 1, len(line) - len(stripped) + 1)
    return Location(file)


def _case_location(text: str, file: str, case: int, needle: str | None) -> Location:
    """Where case ``case`` (1-based) states ``needle`` (a key), else where the case starts."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("[[case]]")]
    if len(starts) < case:
        return Location(file)
    first = starts[case - 1]
    end = starts[case] if case < len(starts) else len(lines)
    if needle is not None:
        for i in range(first, end):
            if lines[i].lstrip().startswith(needle):
                return Location(file, i + 1, len(lines[i]) - len(lines[i].lstrip()) + 1)
    return Location(file, first + 1, 1)


class _Evidence:
    """Loads and verifies a case's evidence fixtures; the shell around the pure verifiers."""

    def __init__(self, test_path: Path, text: str, case: int, raw: Mapping[str, Any]):
        self.dir = test_path.parent
        self.text = text
        self.file = str(test_path)
        self.case = case
        self.raw = raw

    def where(self, key: str) -> Location:
        return _case_location(self.text, self.file, self.case, key)

    def fail(self, key: str, message: str, hint: str | None = None) -> InputError:
        return InputError(message, location=self.where(key), hint=hint)

    def name(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value:
            raise self.fail(key, f'{key} names a file, e.g. {key} = "fixtures/..."')
        return value

    def read(self, key: str, name: str | None = None) -> bytes:
        target = self.dir / (name or self.name(key))
        try:
            return read_bytes(target, what=f"{key} fixture")
        except FtrustError as e:
            raise self.fail(key, f"{key}: {e.message} ({target})") from None

    def at(self) -> datetime:
        from floodlight_trust.clock import parse_time

        value = self.raw.get("at")
        if isinstance(value, datetime):  # TOML offset date-time
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if not isinstance(value, str):
            raise self.fail("at", 'the evidence needs a verification time: at = "2025-06-20T00:00:00Z"')
        try:
            return parse_time(value, what="at")
        except FtrustError as e:
            raise self.fail("at", e.message) from None

    def ima(self) -> Any:
        from floodlight_trust.evidence.verify import load_keyring, verify_ima

        log_name = self.name("ima_log")
        data = self.read("ima_log")
        certs = []
        keyring = self.raw.get("keyring", [])
        if not isinstance(keyring, list) or not all(isinstance(k, str) for k in keyring):
            raise self.fail("keyring", "keyring is a list of certificate files")
        for k in keyring:
            try:
                certs.extend(load_keyring(self.read("keyring", k), f"keyring: {k}"))
            except InputError as e:
                raise self.fail("keyring", e.message) from None
        try:
            return verify_ima(data, keyring=certs, source=str(self.dir / log_name))
        except VerificationError as e:
            return e.message.replace(str(self.dir / log_name), log_name, 1)
        except FtrustError as e:
            raise self.fail("ima_log", f"ima_log: {e}") from None

    def dcap(self, at: datetime) -> Any:
        from floodlight_trust.clients.collateral_files import load_collateral
        from floodlight_trust.evidence.verify import Evidence, verify_enclave

        quote = self.read("quote")
        if "collateral" not in self.raw:
            raise self.fail("quote", 'a quote needs its collateral: collateral = "FILE.json" (or a directory)')
        target = self.dir / self.name("collateral")
        try:
            collateral = load_collateral(target)
        except FtrustError as e:
            raise self.fail("collateral", f"collateral: {e}") from None
        unsafe = self.raw.get("unsafe_allow_expired_crls", False)
        if not isinstance(unsafe, bool):
            raise self.fail("unsafe_allow_expired_crls", "unsafe_allow_expired_crls is true or false")
        try:
            return verify_enclave(Evidence(quote=quote, collateral=collateral), at=at, unsafe_allow_expired_crls=unsafe)
        except VerificationError as e:
            return e.message
        except FtrustError as e:
            raise self.fail("quote", f"quote {self.name('quote')}: {e}") from None

    def ias(self, at: datetime) -> Any:
        from floodlight_trust.evidence.verify import Evidence, IasReportEvidence, verify_enclave

        folder = self.name("ias_report")
        files = ("report.json", "x-iasreport-signature.b64", "x-iasreport-signing-certificate.pem")
        body, signature, certificate = (self.read("ias_report", f"{folder}/{f}") for f in files)
        try:
            return verify_enclave(Evidence(ias_report=IasReportEvidence(body, signature, certificate)), at=at)
        except VerificationError as e:
            return e.message
        except FtrustError as e:
            raise self.fail("ias_report", f"ias_report {folder}: {e}") from None

    def claims(self, base: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        """The claims document: ``base`` with its ima / enclave parts replaced by verified evidence,
        and the first verification failure (a denial), if any."""
        doc = copy.deepcopy(base) if base is not None else {}
        if "quote" in self.raw and "ias_report" in self.raw:
            raise self.fail("ias_report", "a case holds one enclave's evidence: quote or ias_report, not both")
        enclave_evidence = "quote" in self.raw or "ias_report" in self.raw
        at = self.at() if enclave_evidence or "at" in self.raw else None
        failure: str | None = None
        verified: dict[str, Any] = {}
        if "ima_log" in self.raw:
            ima = self.ima()
            if isinstance(ima, str):
                failure = ima
            else:
                verified["ima"] = ima
        if enclave_evidence:
            assert at is not None
            enclave = self.dcap(at) if "quote" in self.raw else self.ias(at)
            if isinstance(enclave, str):
                failure = failure or enclave
            else:
                verified["enclave"] = enclave
        if at is not None:
            doc["verified_at"] = format_time(at)
        # Host policies do not judge time: an IMA-only case without `at` gets a fixed one.
        doc.setdefault("verified_at", "1970-01-01T00:00:00Z")
        part = claimset_to_json(ClaimSet(verified_at=at or datetime(1970, 1, 1, tzinfo=UTC), **verified))
        for key in ("ima", "enclave"):
            if key in part:
                doc[key] = part[key]
        return doc, failure


def load_test_file(path: Path) -> TestFile:
    """Read a test file, its policy and its claims fixtures. Errors are located InputErrors."""
    name = str(path)
    text = read_text(path, what="policy test file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", location=Location(name)) from None
    for key in doc:
        if key not in TOP_KEYS:
            raise InputError(
                f"unknown key {key!r}",
                location=_key_location(text, name, key),
                hint=_did_you_mean(key, TOP_KEYS) or 'a test file holds policy = "FILE" and [[case]] tables',
            )
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
        for key in sorted(set(raw) - CASE_KEYS):
            raise InputError(
                f"case {n}: unknown key {key!r}",
                location=_case_location(text, name, n, key),
                hint=_did_you_mean(key, CASE_KEYS) or "keys: " + ", ".join(sorted(CASE_KEYS)),
            )
        targets = [k for k in ("host", "enclave", "vnf") if k in raw]
        if len(targets) != 1:
            raise InputError(f"{where}: name exactly one of host, enclave or vnf")
        if raw.get("expect") not in ("allow", "deny"):
            raise InputError(f'{where}: expect must be "allow" or "deny"')
        claims_name = raw.get("claims")
        has_evidence = any(k in raw for k in EVIDENCE_KEYS)
        if claims_name is None and not has_evidence:
            raise InputError(
                f'case {n}: missing claims = "FILE.json" or an evidence fixture',
                location=_case_location(text, name, n, None),
                hint="evidence fixtures: ima_log, quote + collateral + at, ias_report + at",
            )
        if claims_name is not None and not isinstance(claims_name, str):
            raise InputError(f'case {n}: claims = "FILE.json"', location=_case_location(text, name, n, "claims"))
        if claims_name is not None and claims_name not in fixtures:
            fixture_path = path.parent / claims_name
            try:
                fixtures[claims_name] = json.loads(read_bytes(fixture_path, what="claims fixture"))
            except json.JSONDecodeError as e:
                raise InputError(
                    f"not valid JSON: {e.msg}", location=Location(str(fixture_path), e.lineno, e.colno)
                ) from None
        base = fixtures[claims_name] if claims_name is not None else None
        failure: str | None = None
        if has_evidence:
            claims, failure = _Evidence(path, text, n, raw).claims(base)
        else:
            claims = copy.deepcopy(base) if base is not None else {}
        for dotted, value in (raw.get("set") or {}).items():
            _set_path(claims, dotted, value, _case_location(text, name, n, "set"))
        for entry in raw.get("add_ima") or []:
            for key in entry:
                if key not in IMA_ENTRY_KEYS:
                    raise InputError(
                        f"case {n}: add_ima: unknown entry field {key!r}",
                        location=_case_location(text, name, n, "add_ima"),
                        hint=_did_you_mean(key, IMA_ENTRY_KEYS) or "fields: " + ", ".join(sorted(IMA_ENTRY_KEYS)),
                    )
            ima = claims.setdefault("ima", {"entries": []})
            ima["entries"].append({"template": "ima-ng", "digest_algorithm": "sha256", "signature": "none", **entry})
        if targets[0] == "vnf" and failure is None:
            missing = [k for k in ("ima", "enclave") if claims.get(k) is None]
            if missing:
                raise InputError(
                    f"case {n}: vnf = {raw['vnf']!r} is an enroll decision, which judges the host and the enclave: "
                    + " and ".join(
                        {
                            "ima": "no host evidence (ima_log, or claims with an ima part)",
                            "enclave": "no enclave evidence (quote, ias_report, or claims with an enclave part)",
                        }[k]
                        for k in missing
                    ),
                    location=_case_location(text, name, n, "vnf"),
                )
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
                evidence_failure=failure,
            )
        )
    return TestFile(path, policy, tuple(cases))


def evaluate_case(policy: Policy, case: Case) -> Decision:
    if case.evidence_failure is not None:  # the Verification Manager refuses unverifiable evidence
        reason = Reason("evidence", case.evidence_failure, case.location)
        return Decision(False, f"{case.target_kind} {case.target}", policy.version, (reason,))
    claims = claimset_from_json(case.claims, where=f"{case.location}: claims")
    if case.target_kind == "host":
        return policy.evaluate_host(case.target, claims)
    if case.target_kind == "enclave":
        return policy.evaluate_enclave(case.target, claims)
    try:
        return policy.evaluate_enroll(case.target, claims).combined()
    except FtrustError as e:
        raise type(e)(f"{case.location}: {e.message}", location=e.location, hint=e.hint) from None


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
                denied_by.update((r.location or "", r.rule) for r in result.decision.failures)

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
