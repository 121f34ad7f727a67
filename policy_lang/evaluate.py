"""Evaluation: typed claims in, a :class:`Decision` with every reason out.

Pure: no files, no clock (the claims carry ``verified_at``), no logging. Reasons come in a
deterministic order: evidence checks, then the policy's statements in source order, and within a
statement the measurement-list entries in list order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from itertools import compress
from operator import ne
from typing import TYPE_CHECKING, Any

from floodlight_trust.claims import ClaimSet, EnclaveClaims, SignatureStatus
from floodlight_trust.errors import InputError
from floodlight_trust.reasons import Reason, ReasonLevel
from policy_lang.check import TExpr, hex_bytes, is_hex
from policy_lang.reference import as_set

if TYPE_CHECKING:
    from policy_lang.compile import CompiledEnclave, CompiledHost


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict of one policy on one claim set. ``reasons`` holds every failure (and notes)."""

    allowed: bool
    policy: str
    policy_version: str
    reasons: tuple[Reason, ...]

    @property
    def failures(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.denies)

    @property
    def notes(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if not r.denies)

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "reasons": [r.to_json() for r in self.reasons],
        }

    def explain(self) -> str:
        """Human-readable, one reason per line."""
        head = f"{'ALLOWED' if self.allowed else 'DENIED'} by {self.policy} (policy {self.policy_version[:12]})"
        lines = [head]
        for r in self.reasons:
            tag = "note" if not r.denies else "deny"
            lines.append(f"  {tag}: {r.location}: {r.rule}: {r.message}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class HostMeasuredState:
    """What a host policy knows about the whole measurement list after a round, so that the next
    round, which sees only the entries appended since (``ImaClaims.first_index > 0``), is judged as
    the whole list would be.

    ``require measured`` and ``boot_aggregate`` are properties of the whole list: a required file
    measured in round 1 does not reappear in round 2, and the boot_aggregate is entry 0. The caller
    keeps this value with its incremental IMA state (``to_json``/``from_json``) and passes it back;
    it must pair it only with claims that continue the same list, whose prefix it has checked (the
    IMA appraisal's prefix check), so that a changed boot_aggregate is caught there.
    """

    host_policy: str
    policy_version: str
    entries: int  # entries judged so far: the next round's claims start at this index
    measured: frozenset[str]  # 'require measured' paths or globs already seen
    boot_aggregate: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "host_policy": self.host_policy,
            "policy_version": self.policy_version,
            "entries": self.entries,
            "measured": sorted(self.measured),
            "boot_aggregate": self.boot_aggregate,
        }

    @classmethod
    def from_json(cls, d: Any) -> HostMeasuredState:
        try:
            boot = d["boot_aggregate"]
            state = cls(
                host_policy=str(d["host_policy"]),
                policy_version=str(d["policy_version"]),
                entries=int(d["entries"]),
                measured=frozenset(str(x) for x in d["measured"]),
                boot_aggregate=None if boot is None else str(boot),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"host measured state: missing or malformed value ({e})") from None
        if state.entries < 0:
            raise InputError("host measured state: negative entry count")
        return state


def _decision(policy: str, version: str, reasons: list[Reason]) -> Decision:
    allowed = not any(r.denies for r in reasons)
    return Decision(allowed, policy, version, tuple(reasons))


def show(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(sorted(show(v) for v in value)) + "}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


# ---- enclave expressions ---------------------------------------------------------------------

Failure = tuple[str, dict[str, Any]]


def claim_value(enclave: EnclaveClaims, name: str) -> Any:
    if name in ("fmspc", "pck_certificate_sha256"):
        return getattr(enclave.platform, name)
    return getattr(enclave, name)


def value_of(t: TExpr, enclave: EnclaveClaims) -> Any:
    if t.kind == "value":
        return t.value
    if t.kind == "claim":
        return claim_value(enclave, t.name)
    if t.kind == "mask":
        a, b = value_of(t.args[0], enclave), value_of(t.args[1], enclave)
        if a is None or b is None:
            return None
        if is_hex(t.type):
            width = hex_bytes(t.type) or max(len(a), len(b)) // 2
            return format(int(a, 16) & int(b, 16), f"0{2 * width}x")
        return int(a) & int(b)
    return not failures(t, enclave)


def label(t: TExpr) -> str:
    from policy_lang.fmt import format_expr

    if t.kind == "rule":
        return t.name
    return format_expr(t.node)


def failures(t: TExpr, enclave: EnclaveClaims) -> list[Failure]:
    """Why the condition ``t`` does not hold (empty: it holds)."""
    kind = t.kind
    if kind == "and":
        return failures(t.args[0], enclave) + failures(t.args[1], enclave)
    if kind == "or":
        left = failures(t.args[0], enclave)
        if not left:
            return []
        right = failures(t.args[1], enclave)
        if not right:
            return []
        both = left + right
        return [
            (
                "none of the alternatives holds: " + "; ".join(m for m, _ in both),
                {"alternatives": [e for _, e in both]},
            )
        ]
    if kind == "not":
        if failures(t.args[0], enclave):
            return []
        return [(f"{label(t.args[0])} holds, but the policy requires it not to", {"condition": label(t.args[0])})]
    if kind == "rule":
        inner = failures(t.args[0], enclave)
        return [(f"rule {t.name}: {m}", {"rule": t.name, **e}) for m, e in inner]
    if kind == "claim":  # a bool claim used as a condition
        v = claim_value(enclave, t.name)
        return [] if v is True else [(f"{t.name} is {show(v)}, expected true", {"claim": t.name, "found": v})]
    if kind == "value":
        return [] if t.value is True else [(f"{label(t)} is false", {})]
    if kind == "cmp":
        lt, rt = t.args
        a, b = value_of(lt, enclave), value_of(rt, enclave)
        op = t.name
        ok = a is not None and b is not None and _compare(op, a, b)
        if ok:
            return []
        subject = label(lt)
        return [
            (
                f"{subject} is {show(a)}, expected {'' if op == '==' else op + ' '}{show(b)}",
                {"claim": subject, "found": a, "expected": b, "op": op},
            )
        ]
    if kind == "in":
        lt, rt = t.args
        a, b = value_of(lt, enclave), value_of(rt, enclave)
        negated = t.name == "not in"
        holds = a is not None and b is not None and (a in b) != negated
        if holds:
            return []
        if rt.kind == "claim":  # "X" in advisory_ids
            what = f"{show(a)} is {'' if negated else 'not '}in {rt.name} {show(b)}"
            return [(what, {"claim": rt.name, "found": b, "expected": a, "op": t.name})]
        expected = f"{'none' if negated else 'one'} of {show(b)}"
        return [
            (
                f"{label(lt)} is {show(a)}, expected {expected}",
                {"claim": label(lt), "found": a, "expected": b, "op": t.name},
            )
        ]
    raise AssertionError(f"not a condition: {kind}")


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def evaluate_enclave(e: CompiledEnclave, claims: ClaimSet, version: str) -> Decision:
    reasons: list[Reason] = []
    where = e.pos.short
    enclave = claims.enclave
    if enclave is None:
        reasons.append(Reason("evidence", "no enclave evidence in the claims", where))
        return _decision(e.name, version, reasons)
    if enclave.simulated:
        if e.allow_simulated is None:
            reasons.append(
                Reason(
                    "simulated",
                    "evidence comes from a SIMULATED SGX platform; refused unless the enclave policy "
                    "says allow_simulated = true",
                    where,
                    {"simulated": True},
                )
            )
        else:
            reasons.append(
                Reason(
                    "simulated",
                    "INSECURE: evidence from a SIMULATED SGX platform accepted because allow_simulated = true",
                    e.allow_simulated.short,
                    {"simulated": True},
                    level=ReasonLevel.NOTE,
                )
            )
    if enclave.debug:
        if e.allow_debug is None:
            reasons.append(
                Reason(
                    "debug",
                    "debug enclave refused: its memory can be read by the host (set allow_debug = true to accept)",
                    where,
                    {"debug": True, "mrenclave": enclave.mrenclave},
                )
            )
        else:
            reasons.append(
                Reason(
                    "debug",
                    "INSECURE: debug enclave accepted (allow_debug = true)",
                    e.allow_debug.short,
                    {"debug": True},
                    level=ReasonLevel.NOTE,
                )
            )
    for rule in e.rules:
        if rule.kind == "expr":
            assert rule.expr is not None
            for message, evidence in failures(rule.expr, enclave):
                reasons.append(Reason(rule.name, message, rule.pos.short, evidence))
        elif rule.kind == "deny_advisories":
            hit = sorted(set(enclave.advisory_ids) & rule.values)
            if hit:
                reasons.append(
                    Reason(
                        rule.name,
                        f"platform is affected by denied advisories {', '.join(hit)}",
                        rule.pos.short,
                        {"found": list(enclave.advisory_ids), "denied": sorted(rule.values)},
                    )
                )
        elif rule.kind == "tolerate_advisories":
            extra = sorted(set(enclave.advisory_ids) - rule.values)
            if extra:
                reasons.append(
                    Reason(
                        rule.name,
                        f"platform is affected by advisories not tolerated: {', '.join(extra)}",
                        rule.pos.short,
                        {"found": list(enclave.advisory_ids), "tolerated": sorted(rule.values)},
                    )
                )
        elif rule.kind == "max_age":
            age = (claims.verified_at - enclave.collateral_issued_at).total_seconds()
            if age > rule.seconds:
                reasons.append(
                    Reason(
                        rule.name,
                        f"collateral issued {_human(age)} before verification; at most {_human(rule.seconds)} allowed",
                        rule.pos.short,
                        {"age_seconds": int(age), "max_seconds": rule.seconds},
                    )
                )
            elif age < -300:
                reasons.append(
                    Reason(
                        rule.name,
                        f"collateral issued {_human(-age)} after the verification time",
                        rule.pos.short,
                        {"age_seconds": int(age)},
                    )
                )
    return _decision(e.name, version, reasons)


def _human(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if (s >= size and s % size == 0) or s >= 10 * size:
            return f"{s // size}{unit}" if s % size == 0 else f"{s / size:.1f}{unit}"
    return f"{s}s"


# ---- host (IMA) ------------------------------------------------------------------------------


def evaluate_host(h: CompiledHost, claims: ClaimSet, version: str) -> Decision:
    return evaluate_host_round(h, claims, version, None)[0]


def evaluate_host_round(
    h: CompiledHost, claims: ClaimSet, version: str, previous: HostMeasuredState | None
) -> tuple[Decision, HostMeasuredState | None]:
    """Judge ``claims.ima``; with ``previous`` (the state after the round that ended at entry
    ``claims.ima.first_index``), whole-list rules are judged as on the whole list. Returns the
    decision and the state to carry to the next round (None without an IMA list)."""
    reasons: list[Reason] = []
    ima = claims.ima
    where = h.pos.short
    if ima is None:
        reasons.append(Reason("evidence", "no IMA measurement list in the claims", where))
        return _decision(h.name, version, reasons), None
    paths, digests, algs = ima.paths, ima.digests, ima.digest_algorithms
    base = ima.first_index
    n = len(paths)
    # What earlier rounds saw of the whole list: nothing for a full list.
    whole: HostMeasuredState | None = None
    if base == 0:
        whole = HostMeasuredState(h.name, version, 0, frozenset(), ima.boot_aggregate)
    elif previous is not None:
        if (previous.host_policy, previous.policy_version, previous.entries) != (h.name, version, base):
            reasons.append(
                Reason(
                    "evidence",
                    f"the whole-list state covers {previous.entries} entries judged by {previous.host_policy} "
                    f"(policy {previous.policy_version[:12]}), but these claims start at entry {base} for "
                    f"{h.name} (policy {version[:12]}): appraise the full list",
                    where,
                    {"state_entries": previous.entries, "first_index": base},
                )
            )
        elif ima.boot_aggregate is not None and ima.boot_aggregate != previous.boot_aggregate:
            reasons.append(
                Reason(
                    "boot_aggregate",
                    f"boot_aggregate changed from {show(previous.boot_aggregate)} to {ima.boot_aggregate} "
                    "between rounds: not the same boot",
                    where,
                    {"found": ima.boot_aggregate, "previous": previous.boot_aggregate},
                )
            )
        else:
            whole = previous

    if h.log_hash_alg is not None and ima.log_hash_algorithm != h.log_hash_alg[0]:
        wanted, source, include = h.log_hash_alg
        found = ima.log_hash_algorithm
        reasons.append(
            Reason(
                "log_hash_alg",
                f"the list's template hashes are {found if found else 'of an unknown algorithm (the claims do not say)'}"
                f"; the Keylime runtime policy ({source}) says ima.log_hash_alg {wanted}",
                include.short,
                {"found": found, "expected": wanted},
            )
        )
    for check, column in ((h.templates, ima.templates), (h.algorithms, algs)):
        if check is None:
            continue
        allowed, pos, field_name = check
        if set(column) <= allowed:
            continue
        for value in sorted(set(column) - allowed):
            idx = [i for i in range(n) if column[i] == value]
            reasons.append(
                Reason(
                    field_name,
                    f"{len(idx)} entries use {field_name} {value!r}, expected one of {show(allowed)} "
                    f"(first: entry {base + idx[0]}, {paths[idx[0]]})",
                    pos.short,
                    {
                        "found": value,
                        "expected": allowed,
                        "count": len(idx),
                        "index": base + idx[0],
                        "path": paths[idx[0]],
                    },
                )
            )
    if h.boot_aggregates is not None and whole is None:
        reasons.append(
            Reason(
                "boot_aggregate",
                "incremental list without the state of earlier rounds: boot_aggregate is judged on the full list only",
                h.boot_aggregates[1].short,
                level=ReasonLevel.NOTE,
            )
        )
    elif h.boot_aggregates is not None and whole is not None:
        allowed, pos, _ = h.boot_aggregates
        found = whole.boot_aggregate
        if found not in allowed:
            reasons.append(
                Reason(
                    "boot_aggregate",
                    f"boot_aggregate is {show(found)}, expected one of {show(allowed)}",
                    pos.short,
                    {"found": found, "expected": allowed},
                )
            )

    violations = ima.violations
    if violations and h.allow_violations is None:
        for i in sorted(violations):
            reasons.append(
                Reason(
                    "violation",
                    f"measurement violation (zeroed entry) for {paths[i]} at entry {base + i}; "
                    "refused unless the host policy says allow_violations = true",
                    where,
                    {"path": paths[i], "index": base + i},
                )
            )

    # The hot path: most entries are on the allowlist with their one allowed digest, so the allowed
    # values looked up for every path (one C-level map) equal the measured digests, and only the
    # entries where they differ are looked at (a set of allowed digests, or not allowed).
    get = h.exact.get
    looked_up = list(map(get, paths))  # ImaClaims guarantees the columns have one length
    slow: list[int] = []
    if looked_up != (digests if isinstance(digests, list) else list(digests)):
        for i in compress(range(n), map(ne, looked_up, digests)):
            s, d = looked_up[i], digests[i]
            # s is the one allowed digest (a str) or a frozenset of them
            if s is None or s.__class__ is str or d not in s:
                slow.append(i)
    del looked_up
    any_digests = h.any_digests
    excluded = h.exclude.match if h.exclude is not None else None
    globs_any = h.globs_any.match if h.globs_any is not None else None
    for i in slow:
        if i in violations:
            continue
        p, d = paths[i], digests[i]
        if d in any_digests:
            continue
        if excluded is not None and excluded(p):
            continue
        allowed_here = h.exact.get(p)
        expected: frozenset[str] | None = None if allowed_here is None else as_set(allowed_here)
        rule_pos = h.exact_pos.get(p, where)
        if globs_any is not None and globs_any(p):
            ok = False
            for g in h.globs:
                if g.regex.match(p):
                    if d in g.digests:
                        ok = True
                        break
                    if expected is None:
                        expected, rule_pos = g.digests, g.pos.short
            if ok:
                continue
        alg = algs[i]
        what = "measured buffer" if ima.templates[i] == "ima-buf" else "file"  # e.g. a key on a keyring
        if expected is not None:
            reasons.append(
                Reason(
                    "allowlist",
                    f"{what} {p} has digest {alg}:{d}, expected one of {show(expected)}",
                    rule_pos,
                    {"path": p, "found": d, "digest_algorithm": alg, "expected": expected, "index": base + i},
                )
            )
        else:
            reasons.append(
                Reason(
                    "allowlist",
                    f"unknown {what} {p} ({alg}:{d}) is not in the allowlist",
                    where,
                    {"path": p, "found": d, "digest_algorithm": alg, "index": base + i},
                )
            )

    measured_now: frozenset[str] = frozenset()
    if h.required:
        if whole is None:
            reasons.append(
                Reason(
                    "require_measured",
                    "incremental list without the state of earlier rounds: 'require measured' is judged "
                    "on the full list only",
                    h.required[0].pos.short,
                    level=ReasonLevel.NOTE,
                )
            )
        else:
            path_set = set(paths)
            seen = set(whole.measured)
            for req in h.required:
                if req.pattern in seen:
                    continue  # measured in an earlier round of this list
                if req.regex is None:
                    present = req.pattern in path_set
                else:
                    m = req.regex.match
                    present = any(m(p) for p in path_set)
                if present:
                    seen.add(req.pattern)
                    continue
                reasons.append(
                    Reason(
                        "require_measured",
                        f"required file {req.pattern} was not measured"
                        + (f" (entries 0..{base + n - 1} of the list)" if base else ""),
                        req.pos.short,
                        {"path": req.pattern},
                    )
                )
            measured_now = frozenset(seen)

    if h.signatures:
        assert h.signatures_any is not None
        m = h.signatures_any.match
        sigs, key_ids = ima.signatures, ima.signature_key_ids
        for i, p in enumerate(paths):
            if not m(p) or i in violations:
                continue
            for rule in h.signatures:
                if not rule.regex.match(p):
                    continue
                status, key_id = sigs[i], key_ids[i]
                if status == SignatureStatus.VALID and key_id is not None and key_id.lower() in rule.key_ids:
                    continue
                if status == SignatureStatus.VALID:
                    why = f"is signed by key {key_id}, not by {rule.key_name} {show(rule.key_ids)}"
                else:
                    why = f"has no valid IMA signature (signature: {status.value})"
                reasons.append(
                    Reason(
                        "require_signature",
                        f"file {p} {why}",
                        rule.pos.short,
                        {
                            "path": p,
                            "signature": status.value,
                            "key_id": key_id,
                            "key": rule.key_name,
                            "expected": rule.key_ids,
                            "index": base + i,
                        },
                    )
                )
    after = None
    if whole is not None:
        after = HostMeasuredState(h.name, version, base + n, measured_now, whole.boot_aggregate)
    return _decision(h.name, version, reasons), after


def evaluate_host_tpm(h: CompiledHost, tpm: Any, version: str) -> Decision:
    """``tpm = true`` and ``boot_pcrs`` of host policy ``h`` on a host's TPM facts (a
    ``claims.TpmClaims``, or None when the host's evidence was not anchored in a registered TPM)."""
    reasons: list[Reason] = []
    anchored = bool(tpm is not None and tpm.anchored)
    if h.tpm_required is not None and not anchored:
        reasons.append(
            Reason(
                "tpm",
                "the host policy requires TPM anchoring, but this round's evidence is not anchored in a registered TPM"
                + ("" if tpm is not None else " (no TPM registered for the host, or no TPM quote)"),
                h.tpm_required.short,
            )
        )
    if h.boot_pcrs is not None:
        expected, unchanged, pos = h.boot_pcrs
        if not anchored:
            reasons.append(
                Reason("boot_pcrs", "boot PCRs cannot be judged: no verified TPM quote this round", pos.short)
            )
        elif unchanged:
            baseline = tpm.registered_pcrs
            if baseline is None:
                reasons.append(
                    Reason("boot_pcrs", "no boot PCR values were recorded when the TPM was registered", pos.short)
                )
            else:
                for bank, values in sorted(baseline.items()):
                    for pcr, want in sorted(values.items()):
                        got = tpm.pcrs.get(bank, {}).get(pcr)
                        if pcr != 10 and got != want:
                            reasons.append(
                                Reason(
                                    "boot_pcrs",
                                    f"{bank} PCR {pcr} is {show(got)}, at registration it was {want}",
                                    pos.short,
                                    {"bank": bank, "pcr": pcr, "found": got, "registered": want},
                                )
                            )
        else:
            for bank, values in sorted(expected.items()):
                for pcr, want in sorted(values.items()):
                    got = tpm.pcrs.get(bank, {}).get(pcr)
                    if got != want:
                        reasons.append(
                            Reason(
                                "boot_pcrs",
                                f"{bank} PCR {pcr} is {show(got)}, the policy expects {want}"
                                + (" (not quoted)" if got is None else ""),
                                pos.short,
                                {"bank": bank, "pcr": pcr, "found": got, "expected": want},
                            )
                        )
    return _decision(h.name, version, reasons)


# ---- enroll decisions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrollDecision:
    """An enroll rule's verdict on a VNF: its host policy on the host's IMA list and its enclave
    policy on the VNF's enclave, both judged (neither can be skipped for lack of evidence)."""

    rule: str
    location: str
    host: Decision
    enclave: Decision

    @property
    def allowed(self) -> bool:
        return self.host.allowed and self.enclave.allowed

    def combined(self) -> Decision:
        """One Decision (host reasons, then enclave reasons), as policy tests judge it."""
        return Decision(
            self.allowed, f"enroll {self.rule}", self.host.policy_version, self.host.reasons + self.enclave.reasons
        )


# ---- traces (--explain): which rules were evaluated and what matched --------------------------


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule of a policy as evaluated: ``outcome`` is "pass", "deny" or "note"."""

    rule: str
    location: str
    outcome: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "location": self.location, "outcome": self.outcome, "detail": self.detail}


def _claims_of(t: TExpr) -> list[str]:
    if t.kind == "claim":
        return [t.name]
    out: list[str] = []
    for a in t.args:
        for name in _claims_of(a):
            if name not in out:
                out.append(name)
    return out


def trace_enclave(e: CompiledEnclave, claims: ClaimSet, decision: Decision) -> tuple[TraceStep, ...]:
    """Every statement of an enclave policy with its outcome and the claim values it looked at."""
    enclave = claims.enclave
    if enclave is None:
        return (TraceStep("evidence", e.pos.short, "deny", "no enclave evidence in the claims"),)
    denied = {(r.rule, r.location) for r in decision.failures}
    steps: list[TraceStep] = []
    for name, value, switch in (
        ("simulated", enclave.simulated, e.allow_simulated),
        ("debug", enclave.debug, e.allow_debug),
    ):
        where = (switch or e.pos).short
        outcome = "deny" if (name, e.pos.short) in denied else ("note" if value else "pass")
        steps.append(
            TraceStep(name, where, outcome, f"{name} is {show(value)}" + (f"; allow_{name} = true" if switch else ""))
        )
    for rule in e.rules:
        where = rule.pos.short
        outcome = "deny" if (rule.name, where) in denied else "pass"
        if rule.kind == "expr":
            assert rule.expr is not None
            looked = ", ".join(f"{n} = {show(claim_value(enclave, n))}" for n in _claims_of(rule.expr))
            detail = f"{label(rule.expr)}" + (f" ({looked})" if looked else "")
        elif rule.kind in ("deny_advisories", "tolerate_advisories"):
            detail = f"advisories {show(list(enclave.advisory_ids))}; {rule.kind.split('_')[0]} {show(rule.values)}"
        else:
            age = (claims.verified_at - enclave.collateral_issued_at).total_seconds()
            detail = f"collateral issued {_human(age)} before verification; at most {_human(rule.seconds)}"
        steps.append(TraceStep(rule.name, where, outcome, detail))
    return tuple(steps)


def trace_host(h: CompiledHost, claims: ClaimSet, decision: Decision) -> tuple[TraceStep, ...]:
    """Every statement of a host policy with its outcome and what it matched in the list."""
    ima = claims.ima
    if ima is None:
        return (TraceStep("evidence", h.pos.short, "deny", "no IMA measurement list in the claims"),)
    denied = {r.rule for r in decision.failures}
    steps: list[TraceStep] = []
    paths, digests = ima.paths, ima.digests
    for check, column in ((h.templates, ima.templates), (h.algorithms, ima.digest_algorithms)):
        if check is not None:
            allowed, pos, name = check
            steps.append(
                TraceStep(
                    name,
                    pos.short,
                    "deny" if name in denied else "pass",
                    f"used {show(set(column))}; allowed {show(allowed)}",
                )
            )
    if h.boot_aggregates is not None:
        steps.append(
            TraceStep(
                "boot_aggregate",
                h.boot_aggregates[1].short,
                "deny" if "boot_aggregate" in denied else "pass",
                f"boot_aggregate {show(ima.boot_aggregate)}",
            )
        )
    if h.log_hash_alg is not None:
        wanted, source, include = h.log_hash_alg
        steps.append(
            TraceStep(
                "log_hash_alg",
                include.short,
                "deny" if "log_hash_alg" in denied else "pass",
                f"template hashes {show(ima.log_hash_algorithm)}; {source} says {wanted}",
            )
        )
    exact = any_digest = excluded = globbed = violations = refused = 0
    for i, (p, d) in enumerate(zip(paths, digests, strict=True)):
        allowed_here = h.exact.get(p)
        if i in ima.violations:
            violations += 1
        elif allowed_here is not None and d in as_set(allowed_here):
            exact += 1
        elif d in h.any_digests:
            any_digest += 1
        elif h.exclude is not None and h.exclude.match(p):
            excluded += 1
        elif any(g.regex.match(p) and d in g.digests for g in h.globs):
            globbed += 1
        else:
            refused += 1
    sources = ", ".join(f"{name} ({n} entries)" for name, n in h.references)
    steps.append(
        TraceStep(
            "allowlist",
            h.pos.short,
            "deny" if "allowlist" in denied else "pass",
            f"{len(paths)} entries: {exact} on the allowlist with their digest, {any_digest} by 'allow any digest', "
            f"{excluded} excluded, {globbed} by allow globs, {refused} refused"
            + (f"; reference lists {sources}" if sources else ""),
        )
    )
    if violations or h.allow_violations is None:
        where = (h.allow_violations or h.pos).short
        outcome = "deny" if "violation" in denied else ("note" if violations else "pass")
        steps.append(TraceStep("violation", where, outcome, f"{violations} measurement violations"))
    for req in h.required:
        hit = next(
            (
                ima.first_index + i
                for i, p in enumerate(paths)
                if (req.regex.match(p) if req.regex else p == req.pattern)
            ),
            None,
        )
        steps.append(
            TraceStep(
                "require_measured",
                req.pos.short,
                "pass" if hit is not None else ("deny" if "require_measured" in denied else "note"),
                f"{req.pattern} measured at entry {hit}" if hit is not None else f"{req.pattern} not in this list",
            )
        )
    for sig in h.signatures:
        matching = [i for i, p in enumerate(paths) if sig.regex.match(p) and i not in ima.violations]
        steps.append(
            TraceStep(
                "require_signature",
                sig.pos.short,
                "deny"
                if any(r.rule == "require_signature" and r.location == sig.pos.short for r in decision.failures)
                else "pass",
                f"{len(matching)} entries match {sig.pattern}; signatures by {sig.key_name} {show(sig.key_ids)} required",
            )
        )
    return tuple(steps)
