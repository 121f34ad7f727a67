"""Checked program to :class:`Policy`: lookup tables, compiled patterns, certificate profiles.

Compilation reads the reference lists a host policy includes (through a reader function, so the
rest stays pure) and turns every pattern into one combined regular expression per purpose.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from floodlight_trust.claims import ClaimSet
from floodlight_trust.errors import FtrustError, InputError, Location, PolicyError
from policy_lang import ast
from policy_lang.check import (
    Checker,
    PolicySources,
    Program,
    Root,
    TExpr,
    check,
    load_program,
    load_programs,
    suggest,
)
from policy_lang.evaluate import (
    Decision,
    EnrollDecision,
    HostMeasuredState,
    TraceStep,
    evaluate_enclave,
    evaluate_host,
    evaluate_host_round,
    trace_enclave,
    trace_host,
)
from policy_lang.reference import (
    Digests,
    ReferenceList,
    compiled_reference,
    union,
)

if TYPE_CHECKING:  # imported where an enroll rule is compiled: a host-only policy never needs them
    from floodlight_trust.pki.grants import RestGrant
    from floodlight_trust.pki.profile import CertificateProfile

KNOWN_ALGORITHMS = ("md5", "sha1", "sha256", "sha384", "sha512", "sm3")
HOST_SETTINGS = ("allow_violations", "integrity_enclave", "tpm", "boot_pcrs", "UNSAFE_any_integrity_enclave")
# boot_pcrs: the PCRs firmware and boot loader measure (IMA's PCR 10 is judged by the IMA list).
BOOT_PCRS = range(0, 10)
PCR_BANKS = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
ENCLAVE_SETTINGS = ("allow_debug", "allow_simulated", "max_collateral_age")
ENROLL_SETTINGS = ("host", "enclave")
CERTIFICATE_SETTINGS = ("subject", "san_dns", "san_uri", "validity", "key_type")
DIGEST_HEX_LENGTHS = (32, 40, 64, 96, 128)


def glob_to_regex(pattern: str) -> str:
    """``**`` any characters, ``*`` and ``?`` within one path component, ``[...]`` a class."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out) + r"\Z"


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


@dataclass(frozen=True, slots=True)
class GlobAllow:
    pattern: str
    regex: re.Pattern[str]
    digests: frozenset[str]
    pos: ast.Pos


@dataclass(frozen=True, slots=True)
class RequiredFile:
    pattern: str
    regex: re.Pattern[str] | None  # None: exact path
    pos: ast.Pos


@dataclass(frozen=True, slots=True)
class SignatureRule:
    pattern: str
    regex: re.Pattern[str]
    key_name: str
    key_ids: frozenset[str]
    pos: ast.Pos


@dataclass(slots=True)
class CompiledHost:
    name: str
    pos: ast.Pos
    templates: tuple[frozenset[str], ast.Pos, str] | None = None
    algorithms: tuple[frozenset[str], ast.Pos, str] | None = None
    boot_aggregates: tuple[frozenset[str], ast.Pos, str] | None = None
    allow_violations: ast.Pos | None = None
    exact: dict[str, Digests] = field(default_factory=dict)  # path -> the digest, or a set of them
    exact_pos: dict[str, str] = field(default_factory=dict)
    any_digests: frozenset[str] = frozenset()
    globs: list[GlobAllow] = field(default_factory=list)
    globs_any: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    required: list[RequiredFile] = field(default_factory=list)
    signatures: list[SignatureRule] = field(default_factory=list)
    signatures_any: re.Pattern[str] | None = None
    integrity_enclave: str | None = None
    # Set (where) when the host policy opts out of judging its integrity enclave: NEVER in production.
    unsafe_any_integrity_enclave: ast.Pos | None = None
    tpm_required: ast.Pos | None = None  # tpm = true: evidence must be anchored in the host's TPM
    # boot_pcrs = {"sha256:0=<hex>", ...} (expected values) or "unchanged" (as at registration)
    boot_pcrs: tuple[dict[str, dict[int, str]], bool, ast.Pos] | None = None
    references: list[tuple[str, int]] = field(default_factory=list)  # (file, entries)
    # Keylime's ima.log_hash_alg of an included runtime policy: (algorithm, "file:line", include)
    log_hash_alg: tuple[str, str, ast.Pos] | None = None
    rules: list[tuple[str, ast.Pos]] = field(default_factory=list)  # for test coverage


@dataclass(frozen=True, slots=True)
class EnclaveStatement:
    name: str
    kind: str  # expr, deny_advisories, tolerate_advisories, max_age
    pos: ast.Pos
    expr: TExpr | None = None
    values: frozenset[str] = frozenset()
    seconds: int = 0


@dataclass(slots=True)
class CompiledEnclave:
    name: str
    pos: ast.Pos
    rules: list[EnclaveStatement] = field(default_factory=list)
    allow_debug: ast.Pos | None = None
    allow_simulated: ast.Pos | None = None


@dataclass(frozen=True, slots=True)
class EnrollRule:
    """Which policies a VNF (by name or glob pattern) must satisfy, and the certificate it gets."""

    name: str
    pattern: str
    host_policy: str
    enclave_policy: str
    profile: CertificateProfile
    location: str  # "file:line"

    def matches(self, vnf_name: str) -> bool:
        return fnmatch.fnmatchcase(vnf_name, self.pattern)


@dataclass(frozen=True, slots=True)
class Policy:
    """A compiled policy. Immutable; safe to share between threads."""

    version: str  # sha256 over all source files and reference lists
    sources: list[str]
    hosts: Mapping[str, CompiledHost]
    enclaves: Mapping[str, CompiledEnclave]
    enrolls: tuple[EnrollRule, ...]

    @property
    def host_policies(self) -> list[str]:
        return list(self.hosts)

    @property
    def enclave_policies(self) -> list[str]:
        return list(self.enclaves)

    def enroll_rule(self, vnf_name: str) -> EnrollRule | None:
        """The enroll rule for a VNF: an exact name wins, else the first matching pattern."""
        for rule in self.enrolls:
            if rule.pattern == vnf_name:
                return rule
        for rule in self.enrolls:
            if rule.matches(vnf_name):
                return rule
        return None

    def evaluate_host_tpm(self, host_policy: str, tpm: object) -> Decision:
        """Judge a host's TPM facts (``claims.TpmClaims`` or None) with its ``tpm`` and ``boot_pcrs``."""
        from policy_lang.evaluate import evaluate_host_tpm

        return evaluate_host_tpm(self._host(host_policy), tpm, self.version)

    def host_integrity_enclave(self, host_policy: str) -> str | None:
        return self._host(host_policy).integrity_enclave

    def host_unsafe_any_integrity_enclave(self, host_policy: str) -> str | None:
        """``file:line`` of ``UNSAFE_any_integrity_enclave = true`` in the host policy, else None."""
        pos = self._host(host_policy).unsafe_any_integrity_enclave
        return pos.short if pos is not None else None

    def _host(self, name: str) -> CompiledHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise PolicyError(f"no host policy {name!r}", hint=suggest(name, self.hosts)) from None

    def _enclave(self, name: str) -> CompiledEnclave:
        try:
            return self.enclaves[name]
        except KeyError:
            raise PolicyError(f"no enclave policy {name!r}", hint=suggest(name, self.enclaves)) from None

    def evaluate_host(self, host_policy: str, claims: ClaimSet) -> Decision:
        """Appraise ``claims.ima`` with the named host policy."""
        return evaluate_host(self._host(host_policy), claims, self.version)

    def evaluate_host_round(
        self, host_policy: str, claims: ClaimSet, previous: HostMeasuredState | None = None
    ) -> tuple[Decision, HostMeasuredState | None]:
        """Appraise one round of a host's IMA list, possibly incremental (``first_index > 0``).

        ``previous`` is the state this method returned for the round that ended where these claims
        start; with it, ``require measured`` and ``boot_aggregate`` are judged as on the whole list
        (a required file seen in an earlier round still counts). Without it an incremental list gets
        a note instead. A full list (``first_index == 0``) ignores ``previous``. Returns the decision
        and the state to keep for the next round (None when the claims hold no IMA list, or when the
        state does not match the claims: then appraise the full list again).
        """
        return evaluate_host_round(self._host(host_policy), claims, self.version, previous)

    def evaluate_enclave(self, enclave_policy: str, claims: ClaimSet) -> Decision:
        """Judge ``claims.enclave`` (at ``claims.verified_at``) with the named enclave policy."""
        return evaluate_enclave(self._enclave(enclave_policy), claims, self.version)

    def evaluate_enroll(self, vnf_name: str, claims: ClaimSet) -> EnrollDecision:
        """Judge a VNF's enrollment: its enroll rule's host policy on ``claims.ima`` and enclave
        policy on ``claims.enclave``. Both are needed: missing evidence is an InputError naming what
        is missing (never an enrollment judged on the enclave alone)."""
        rule = self.enroll_rule(vnf_name)
        if rule is None:
            raise PolicyError(
                f"no enroll rule matches VNF {vnf_name!r}", hint=suggest(vnf_name, [r.pattern for r in self.enrolls])
            )
        missing = [
            what
            for what, present in (
                (f"host evidence (an IMA measurement list) for host policy {rule.host_policy}", claims.ima is not None),
                (
                    f"enclave evidence (an SGX quote or IAS report) for enclave policy {rule.enclave_policy}",
                    claims.enclave is not None,
                ),
            )
            if not present
        ]
        if missing:
            raise InputError(
                f"enroll rule {rule.name} ({rule.location}) judges the host and the enclave: missing "
                + " and ".join(missing)
            )
        return EnrollDecision(
            rule.name,
            rule.location,
            self.evaluate_host(rule.host_policy, claims),
            self.evaluate_enclave(rule.enclave_policy, claims),
        )

    def trace_host(self, host_policy: str, claims: ClaimSet, decision: Decision) -> tuple[TraceStep, ...]:
        """What each statement of the host policy evaluated and matched (``--explain``)."""
        return trace_host(self._host(host_policy), claims, decision)

    def trace_enclave(self, enclave_policy: str, claims: ClaimSet, decision: Decision) -> tuple[TraceStep, ...]:
        """What each statement of the enclave policy evaluated and matched (``--explain``)."""
        return trace_enclave(self._enclave(enclave_policy), claims, decision)

    def rules(self) -> list[tuple[str, str, str]]:
        """Every rule as (policy, rule name, "file:line"), for test coverage."""
        out: list[tuple[str, str, str]] = []
        for h in self.hosts.values():
            out.extend((h.name, r, p.short) for r, p in h.rules)
        for e in self.enclaves.values():
            out.extend((e.name, r.name, r.pos.short) for r in e.rules)
            out.append((e.name, "debug", e.pos.short))
        return out


class Compiler:
    def __init__(
        self,
        program: Program,
        checker: Checker,
        sources: PolicySources | None,
        base_dirs: dict[str, PurePath | None],
    ):
        self.p = program
        self.c = checker
        self.sources = sources
        self.base_dirs = base_dirs
        self.hosts: dict[str, CompiledHost] = {}
        self.enclaves: dict[str, CompiledEnclave] = {}
        self.enrolls: list[EnrollRule] = []
        self.digests: dict[str, bytes] = {}  # SHA-256 of each reference list read, for the version

    def run(self) -> None:
        for sym in self.p.symbols.values():
            if sym.kind == "host":
                self.host(sym.node)
            elif sym.kind == "enclave":
                self.enclave(sym.node)
        for sym in self.p.symbols.values():
            if sym.kind == "enroll":
                self.enroll(sym.node)

    # helpers
    def typed(self, node: ast.Node) -> TExpr | None:
        return self.c.expr(node)

    def str_set(self, node: ast.Node, what: str) -> frozenset[str] | None:
        t = self.typed(node)
        if t is None:
            return None
        if t.kind != "value" or t.type not in ("set", "list", "str") or (t.value and t.elem not in ("str", "")):
            self.p.error(f"{what} must be a set of strings", node.pos)
            return None
        return frozenset(t.value) if t.type != "str" else frozenset((t.value,))

    def digest_set(self, node: ast.Node, what: str) -> frozenset[str] | None:
        values = self.str_set(node, what)
        if values is None:
            return None
        out = set()
        for v in values:
            text = v.lower()
            if len(text) not in DIGEST_HEX_LENGTHS or not all(c in "0123456789abcdef" for c in text):
                self.p.error(
                    f"{v!r} is not a hex digest (32, 40, 64, 96 or 128 hex digits for md5/sha1/sha256/sha384/sha512)",
                    node.pos,
                )
                continue
            out.add(text)
        return frozenset(out)

    def boot_pcrs(self, s: ast.Setting) -> tuple[dict[str, dict[int, str]], bool, ast.Pos] | None:
        """``"unchanged"`` or a set of ``"BANK:PCR=HEX"`` strings, each checked with its position."""
        v = s.value
        if isinstance(v, ast.Str):
            if v.value != "unchanged":
                self.p.error('boot_pcrs is "unchanged" or a set of "bank:pcr=hex" values', v.pos)
                return None
            return {}, True, s.pos
        items = getattr(v, "items", None)
        if not isinstance(v, ast.SetLit) or items is None:
            self.p.error('boot_pcrs is "unchanged" or a set of "bank:pcr=hex" values', v.pos)
            return None
        out: dict[str, dict[int, str]] = {}
        for item in items:
            text = item.value if isinstance(item, ast.Str) else None
            bank, _, rest = (text or "").partition(":")
            pcr_text, _, value = rest.partition("=")
            value = value.lower().removeprefix("0x")
            if text is None or bank not in PCR_BANKS or not pcr_text.isdigit():
                self.p.error(
                    f'boot_pcrs entry must be "bank:pcr=hex" with bank one of {", ".join(PCR_BANKS)}', item.pos
                )
                continue
            pcr = int(pcr_text)
            if pcr not in BOOT_PCRS or pcr == 10:
                self.p.error(
                    f"boot_pcrs: PCR {pcr} is not a boot PCR (0-9; PCR 10 is judged by the IMA list)", item.pos
                )
                continue
            if len(value) != 2 * PCR_BANKS[bank] or not all(c in "0123456789abcdef" for c in value):
                self.p.error(f"boot_pcrs: {bank} PCR {pcr} must be {PCR_BANKS[bank]} bytes of hex", item.pos)
                continue
            if pcr in out.get(bank, {}):
                self.p.error(f"boot_pcrs: {bank} PCR {pcr} is given twice", item.pos)
                continue
            out.setdefault(bank, {})[pcr] = value
        return out, False, s.pos

    def bool_literal(self, s: ast.Setting) -> bool | None:
        if not isinstance(s.value, ast.Bool):
            self.p.error(
                f"{s.name} takes the literal true or false (no constants, so it is never set by accident)", s.value.pos
            )
            return None
        return s.value.value

    def reference(self, stmt: ast.IncludeSha256sum | ast.IncludeKeylime) -> ReferenceList | None:
        directory = self.base_dirs.get(stmt.pos.file)
        sources = self.sources
        if directory is None or sources is None:
            self.p.error("include needs a base directory (compile from a file)", stmt.pos)
            return None
        target = directory / stmt.path.value
        name = sources.name(target)
        try:
            data = sources.read(target)
            self.p.sources[name] = data
            # Compiled lists are reused by content hash: an unchanged 100k-entry list is not parsed
            # again. The one hash of the file serves the cache and the policy's version.
            digest = self.digests[name] = hashlib.sha256(data).digest()
            if isinstance(stmt, ast.IncludeSha256sum):
                return compiled_reference("sha256sum", data, name, data_sha256=digest)
            if stmt.verify_with is None:
                return compiled_reference("keylime", data, name, data_sha256=digest)
            key_path = directory / stmt.verify_with.value
            key_name = sources.name(key_path)
            key = sources.read(key_path)
            self.p.sources[key_name] = key
            return compiled_reference("keylime-dsse", data, name, key, key_name, data_sha256=digest)
        except PolicyError as e:
            self.p.errors.extend(getattr(e, "errors", (e,)))
        except FtrustError as e:  # a missing or unreadable file: point at the include statement
            what = e.location.file if e.location and e.location.file else name
            self.p.error(f"cannot include {what}: {e.message}", stmt.path.pos)
        except UnicodeDecodeError:
            self.p.error(f"cannot include {name}: not UTF-8 text", stmt.path.pos)
        return None

    def regex(self, text: str, pos: ast.Pos) -> str | None:
        try:
            re.compile(text)
        except re.error as e:
            self.p.error(f"invalid regular expression {text!r}: {e}", pos)
            return None
        return text

    # declarations
    def host(self, d: ast.HostDecl) -> None:
        h = CompiledHost(d.name, d.pos)
        excludes: list[str] = []
        references: list[ReferenceList] = []
        inline: dict[str, frozenset[str]] = {}
        any_digests: set[str] = set()
        any_pos: ast.Pos | None = None
        seen_settings: dict[str, ast.Pos] = {}
        for s in d.body:
            if isinstance(s, ast.Allow):
                digests = self.digest_set(s.digests, "allowed digests")
                if digests is None:
                    continue
                if is_glob(s.path.value):
                    h.globs.append(GlobAllow(s.path.value, re.compile(glob_to_regex(s.path.value)), digests, s.pos))
                else:
                    inline[s.path.value] = inline.get(s.path.value, frozenset()) | digests
                    h.exact_pos[s.path.value] = s.pos.short
            elif isinstance(s, ast.AllowAny):
                digests = self.digest_set(s.digests, "allowed digests")
                if digests is not None:
                    any_digests |= digests
                    any_pos = any_pos or s.pos
            elif isinstance(s, ast.IncludeSha256sum | ast.IncludeKeylime):
                ref = self.reference(s)
                if ref is not None:
                    references.append(ref)
                    h.references.append((ref.source, len(ref)))
                    excludes.extend(ref.exclude_regexes)
                    if ref.log_hash_alg is not None:
                        where = f"{ref.source}:{ref.log_hash_alg_line or 1}"
                        if h.log_hash_alg is not None and h.log_hash_alg[0] != ref.log_hash_alg:
                            self.p.error(
                                f"Keylime runtime policies disagree on ima.log_hash_alg: {ref.log_hash_alg} "
                                f"({where}) and {h.log_hash_alg[0]} ({h.log_hash_alg[1]})",
                                s.path.pos,
                            )
                        else:
                            h.log_hash_alg = (ref.log_hash_alg, where, s.pos)
            elif isinstance(s, ast.Exclude):
                if s.regex:
                    r = self.regex(s.pattern.value, s.pattern.pos)
                    if r is not None:
                        excludes.append(r)
                else:
                    excludes.append(glob_to_regex(s.pattern.value))
            elif isinstance(s, ast.RequireMeasured):
                v = s.pattern.value
                regex = re.compile(glob_to_regex(v)) if is_glob(v) else None
                h.required.append(RequiredFile(v, regex, s.pos))
            elif isinstance(s, ast.RequireSignature):
                sym = self.p.symbols.get(s.key.name)
                if sym is None or sym.kind != "key":
                    keys = [n for n, x in self.p.symbols.items() if x.kind == "key"]
                    self.p.error(f"unknown key {s.key.name!r}", s.key.pos, suggest(s.key.name, keys))
                    continue
                typed = self.c.typed_symbol(sym, ())
                if typed is None:
                    continue
                h.signatures.append(
                    SignatureRule(
                        s.pattern.value,
                        re.compile(glob_to_regex(s.pattern.value)),
                        s.key.name,
                        frozenset(typed.value),
                        s.pos,
                    )
                )
            elif isinstance(s, ast.EntryFieldIn):
                values = (self.digest_set if s.field_name == "boot_aggregate" else self.str_set)(s.value, s.field_name)
                if values is None:
                    continue
                if s.field_name == "hash_algorithm":
                    for v in sorted(values - set(KNOWN_ALGORITHMS)):
                        self.p.error(f"unknown hash algorithm {v!r}", s.value.pos, suggest(v, KNOWN_ALGORITHMS))
                setattr(
                    h,
                    {"template": "templates", "hash_algorithm": "algorithms", "boot_aggregate": "boot_aggregates"}[
                        s.field_name
                    ],
                    (values, s.pos, s.field_name),
                )
                h.rules.append((s.field_name, s.pos))
            elif isinstance(s, ast.Setting):
                if s.name in seen_settings:
                    self.p.error(f"{s.name} is already set at {seen_settings[s.name]}", s.pos)
                    continue
                seen_settings[s.name] = s.pos
                if s.name == "allow_violations":
                    if self.bool_literal(s):
                        h.allow_violations = s.pos
                elif s.name == "UNSAFE_any_integrity_enclave":
                    if self.bool_literal(s):
                        h.unsafe_any_integrity_enclave = s.pos
                elif s.name == "integrity_enclave":
                    if not isinstance(s.value, ast.Ref):
                        self.p.error("integrity_enclave names an enclave policy", s.value.pos)
                        continue
                    sym = self.p.symbols.get(s.value.name)
                    if sym is None or sym.kind != "enclave":
                        names = [n for n, x in self.p.symbols.items() if x.kind == "enclave"]
                        self.p.error(
                            f"unknown enclave policy {s.value.name!r}", s.value.pos, suggest(s.value.name, names)
                        )
                        continue
                    h.integrity_enclave = s.value.name
                elif s.name == "tpm":
                    if self.bool_literal(s):
                        h.tpm_required = s.pos
                elif s.name == "boot_pcrs":
                    h.boot_pcrs = self.boot_pcrs(s)
                else:
                    self.p.error(
                        f"unknown host setting {s.name!r}",
                        s.pos,
                        suggest(s.name, HOST_SETTINGS) or "settings: " + ", ".join(HOST_SETTINGS),
                    )
        # One dict path -> digests. With a single reference list and nothing else, share it as is.
        if len(references) == 1 and not inline:
            h.exact = references[0].digests
        else:
            exact: dict[str, Digests] = {}
            for ref in references:
                if not exact:
                    exact = dict(ref.digests)
                    continue
                for p, s_ in ref.digests.items():
                    exact[p] = union(exact.get(p), s_)
            for p, s_ in inline.items():
                exact[p] = union(exact.get(p), s_)
            h.exact = exact
        h.any_digests = frozenset(any_digests)
        if h.globs:
            h.globs_any = re.compile("|".join(f"(?:{g.regex.pattern})" for g in h.globs))
        if excludes:
            h.exclude = re.compile("|".join(f"(?:{x})" for x in excludes))
        if h.signatures:
            h.signatures_any = re.compile("|".join(f"(?:{r.regex.pattern})" for r in h.signatures))
        if h.log_hash_alg is not None:
            h.rules.append(("log_hash_alg", h.log_hash_alg[2]))
        h.rules.append(("allowlist", d.pos))
        if not h.allow_violations:
            h.rules.append(("violation", d.pos))
        h.rules.extend(("require_measured", r.pos) for r in h.required)
        h.rules.extend(("require_signature", r.pos) for r in h.signatures)
        self.hosts[d.name] = h

    def enclave(self, d: ast.EnclaveDecl) -> None:
        e = CompiledEnclave(d.name, d.pos)
        labels: dict[str, ast.Pos] = {}
        seen_settings: dict[str, ast.Pos] = {}
        for s in d.body:
            if isinstance(s, ast.EnclaveRule):
                if s.name in labels:
                    self.p.error(f"duplicate rule {s.name!r} in enclave {d.name} (first at {labels[s.name]})", s.pos)
                    continue
                labels[s.name] = s.pos
                t = self.typed(s.expr)
                if t is None:
                    continue
                if t.type != "bool":
                    self.p.error(f"rule {s.name!r} must be a condition, not a {t.type}", s.expr.pos)
                    continue
                e.rules.append(EnclaveStatement(s.name, "expr", s.pos, expr=t))
            elif isinstance(s, ast.Advisories):
                values = self.str_set(s.value, "advisory IDs")
                if values is not None:
                    e.rules.append(
                        EnclaveStatement(f"{s.mode}_advisories", f"{s.mode}_advisories", s.pos, values=values)
                    )
            elif isinstance(s, ast.Setting):
                if s.name in seen_settings:
                    self.p.error(f"{s.name} is already set at {seen_settings[s.name]}", s.pos)
                    continue
                seen_settings[s.name] = s.pos
                if s.name in ("allow_debug", "allow_simulated"):
                    if self.bool_literal(s):
                        setattr(e, s.name, s.pos)
                elif s.name == "max_collateral_age":
                    t = self.typed(s.value)
                    if t is None:
                        continue
                    if t.type != "duration":
                        self.p.error("max_collateral_age is a duration such as 30d or 12h", s.value.pos)
                        continue
                    e.rules.append(EnclaveStatement("max_collateral_age", "max_age", s.pos, seconds=int(t.value)))
                else:
                    self.p.error(
                        f"unknown enclave setting {s.name!r}",
                        s.pos,
                        suggest(s.name, ENCLAVE_SETTINGS) or "settings: " + ", ".join(ENCLAVE_SETTINGS),
                    )
        self.enclaves[d.name] = e

    def enroll(self, d: ast.EnrollDecl) -> None:
        from floodlight_trust.pki.profile import CertificateProfile

        refs: dict[str, str] = {}
        profile = CertificateProfile()
        seen: dict[str, ast.Pos] = {}
        grants: dict[RestGrant, ast.Pos] = {}
        for s in d.body:
            if isinstance(s, ast.Grant):
                grant = self.grant(s)
                if grant is not None and grant in grants:
                    self.p.error(f"grant {grant} is already given at {grants[grant]}", s.pos)
                elif grant is not None:
                    grants[grant] = s.pos
                continue
            if isinstance(s, ast.CertificateBlock):
                if "certificate" in seen:
                    self.p.error(f"certificate is already given at {seen['certificate']}", s.pos)
                    continue
                seen["certificate"] = s.pos
                p = self.certificate(s)
                if p is not None:
                    profile = p
                continue
            assert isinstance(s, ast.Setting)
            if s.name not in ENROLL_SETTINGS:
                self.p.error(
                    f"unknown enroll setting {s.name!r}",
                    s.pos,
                    suggest(s.name, ENROLL_SETTINGS)
                    or 'settings: host, enclave, certificate { ... }, grant METHOD "/path"',
                )
                continue
            if s.name in seen:
                self.p.error(f"{s.name} is already set at {seen[s.name]}", s.pos)
                continue
            seen[s.name] = s.pos
            table = self.hosts if s.name == "host" else self.enclaves
            if not isinstance(s.value, ast.Ref):
                self.p.error(f"{s.name} names a {s.name} policy", s.value.pos)
                continue
            if s.value.name not in table:
                self.p.error(f"unknown {s.name} policy {s.value.name!r}", s.value.pos, suggest(s.value.name, table))
                continue
            refs[s.name] = s.value.name
        for needed in ENROLL_SETTINGS:
            if needed not in seen:
                self.p.error(f"enroll {d.name} needs '{needed} = ...'", d.pos)
        if grants:
            profile = dataclasses.replace(profile, rest_grants=tuple(grants))
        if len(refs) == 2:
            self.enrolls.append(
                EnrollRule(d.name, d.pattern.value, refs["host"], refs["enclave"], profile, d.pos.short)
            )

    def grant(self, s: ast.Grant) -> RestGrant | None:
        """``grant METHOD "/pattern"``: every problem of the method and the pattern, located."""
        from floodlight_trust.pki.grants import HttpMethod, RestGrant, check_pattern

        methods = [m.value for m in HttpMethod]
        ok = True
        if s.method not in methods:
            hint = suggest(s.method, methods) or "methods: " + ", ".join(methods)
            self.p.error(f"unknown HTTP method {s.method!r} in grant", s.method_pos, hint)
            ok = False
        for problem in check_pattern(s.pattern.value):
            self.p.error(
                f"malformed path pattern {s.pattern.value!r}: {problem}",
                s.pattern.pos,
                'e.g. "/wm/core/**" (any path below), "/wm/device/" (exactly), "/wm/*/json" (one segment)',
            )
            ok = False
        return RestGrant(HttpMethod(s.method), s.pattern.value) if ok else None

    def placeholders_ok(self, template: str, what: str, pos: ast.Pos) -> bool:
        from floodlight_trust.pki.profile import PLACEHOLDERS, placeholders_in

        unknown = [p for p in placeholders_in(template) if p not in PLACEHOLDERS]
        for name in unknown:
            self.p.error(
                f"{what}: unknown placeholder {{{name}}} in {template!r}",
                pos,
                suggest(name, PLACEHOLDERS) or "placeholders: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
            )
        return not unknown

    def subject_ok(self, template: str, pos: ast.Pos) -> bool:
        """The subject parses as an RFC 4514 name once its placeholders are filled in, as the CA
        will parse it when a VNF enrolls."""
        from cryptography import x509

        from floodlight_trust.pki.profile import SAMPLE_NAMES, fill

        if not self.placeholders_ok(template, "subject", pos):
            return False
        try:
            name = x509.Name.from_rfc4514_string(fill(template, **SAMPLE_NAMES))
        except ValueError as e:
            detail = f": {e}" if str(e) else ""
            self.p.error(f"subject {template!r} is not an RFC 4514 name{detail}", pos, hint='e.g. "CN={vnf},O=example"')
            return False
        if len(name) == 0:
            self.p.error("subject is empty", pos, hint='e.g. "CN={vnf},O=example"')
            return False
        return True

    def certificate(self, block: ast.CertificateBlock) -> CertificateProfile | None:
        from floodlight_trust.pki.profile import CertificateProfile, KeyType

        values: dict[str, object] = {}
        ok = True
        for s in block.settings:
            if s.name not in CERTIFICATE_SETTINGS:
                self.p.error(
                    f"unknown certificate setting {s.name!r}",
                    s.pos,
                    suggest(s.name, CERTIFICATE_SETTINGS) or "settings: " + ", ".join(CERTIFICATE_SETTINGS),
                )
                ok = False
                continue
            t = self.typed(s.value)
            if t is None:
                ok = False
                continue
            if s.name in ("subject", "key_type"):
                if t.kind != "value" or t.type != "str":
                    self.p.error(f"{s.name} is a string", s.value.pos)
                    ok = False
                    continue
                if s.name == "subject" and not self.subject_ok(t.value, s.value.pos):
                    ok = False
                    continue
                if s.name == "key_type" and t.value not in {k.value for k in KeyType}:
                    self.p.error(
                        f"unknown key type {t.value!r}", s.value.pos, suggest(t.value, [k.value for k in KeyType])
                    )
                    ok = False
                    continue
                values[s.name] = t.value
            elif s.name in ("san_dns", "san_uri"):
                if (
                    t.kind != "value"
                    or t.type not in ("list", "str")
                    or (t.value and t.type == "list" and t.elem != "str")
                ):
                    self.p.error(f"{s.name} is a list of strings", s.value.pos)
                    ok = False
                    continue
                items = (t.value,) if t.type == "str" else tuple(t.value)
                if not all(self.placeholders_ok(str(v), s.name, s.value.pos) for v in items):
                    ok = False
                    continue
                values[s.name] = items
            else:  # validity
                if t.type != "duration":
                    self.p.error("validity is a duration such as 1h or 30d", s.value.pos)
                    ok = False
                    continue
                if t.value <= 0:
                    self.p.error(
                        f"validity {format_duration(int(t.value))} issues certificates that are never valid",
                        s.value.pos,
                        hint="give a positive duration such as 1h",
                    )
                    ok = False
                    continue
                values[s.name] = t.value
        if not ok:
            return None
        default = CertificateProfile()
        return CertificateProfile(
            subject=str(values.get("subject", default.subject)),
            san_dns=tuple(values.get("san_dns", default.san_dns)),  # type: ignore[arg-type]
            san_uris=tuple(values.get("san_uri", default.san_uris)),  # type: ignore[arg-type]
            validity_seconds=int(values.get("validity", default.validity_seconds)),  # type: ignore[call-overload]
            key_type=KeyType(str(values.get("key_type", default.key_type))),
        )


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _version(sources: Mapping[str, bytes], digests: Mapping[str, bytes]) -> str:
    """SHA-256 over every source file: its name, its length and the SHA-256 of its bytes (computed
    once per file: a reference list's is the one its compiled-list cache key used)."""
    h = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name]
        digest = digests.get(name) or hashlib.sha256(data).digest()
        h.update(b"%d:%s\n%d:" % (len(name.encode()), name.encode(), len(data)))
        h.update(digest)
    return h.hexdigest()


def compile_policy_text(
    text: str,
    *,
    filename: str = "<policy>",
    base_dir: PurePath | None = None,
    sources: PolicySources | None = None,
) -> Policy:
    """Parse, check and compile policy text; ``filename`` names it in every location. Imports and
    includes resolve relative to ``base_dir`` and are read from ``sources`` (the shell's files:
    :mod:`floodlight_trust.policy_files`); without both, an import or include is a located error.

    Raises :class:`~policy_lang.check.PolicyErrors` (a PolicyError) listing every error found.
    """
    return _compile(load_program(text, filename, base_dir, sources), sources)


def compile_policy_bytes(
    data: bytes,
    *,
    filename: str = "<policy>",
    base_dir: PurePath | None = None,
    sources: PolicySources | None = None,
) -> Policy:
    """:func:`compile_policy_text` on exact bytes (standard input): they count in the version."""
    text = decode_policy(data, filename)
    return _compile(load_program(text, filename, base_dir, sources, source_bytes=data), sources)


def compile_policy_roots(roots: list[Root], sources: PolicySources | None) -> Policy:
    """Several root files (text, name, base directory, exact bytes) compiled as one policy (a policy
    directory): their declarations share one namespace, as if one file imported the others; a file
    they both import is loaded once."""
    return _compile(load_programs(roots, sources), sources)


def decode_policy(data: bytes, name: str) -> str:
    """Policy bytes as text, or a PolicyError located at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError("policy file is not UTF-8 text", location=Location(name, offset=e.start)) from None


def _compile(program: Program, sources: PolicySources | None) -> Policy:
    if program.errors and not program.modules:
        program.raise_if_errors()
    checker = check(program)
    compiler = Compiler(program, checker, sources, dict(program.base_dirs))
    compiler.run()
    program.raise_if_errors()
    return Policy(
        version=_version(program.sources, compiler.digests),
        sources=sorted(program.sources),
        hosts=dict(compiler.hosts),
        enclaves=dict(compiler.enclaves),
        enrolls=tuple(compiler.enrolls),
    )
