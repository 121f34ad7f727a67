"""Loading (imports), name resolution and type checking.

The checker turns parsed modules into a typed, resolved form (:class:`TExpr` trees and a symbol
table) and collects *every* error it finds, each located at ``file:line:column``. It reports unknown
names with a "did you mean" suggestion, duplicate names with the first declaration, import cycles,
wrong types and malformed literals (hex of the wrong length, unknown TCB statuses).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Protocol

from floodlight_trust.claims import CLAIM_TYPES, EvidenceType, TcbStatus
from floodlight_trust.errors import FtrustError, Location, PolicyError
from policy_lang import ast
from policy_lang.parser import PolicyErrors as PolicyErrors  # re-exported: its home used to be here
from policy_lang.parser import parse_recovering


def _loc(pos: ast.Pos) -> Location:
    return Location(pos.file, pos.line or None, pos.column or None)


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib  # only for a misspelt name: not paid by every command

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


# ---- types -----------------------------------------------------------------------------------
# Scalar types are the claim types of floodlight_trust.claims.CLAIM_TYPES plus "duration";
# collections are ("set", element) and ("list", element). A string literal has type "str" until a
# comparison gives it the other side's type (then "hex32" etc. are checked and normalised).

TCB_NAMES = {m.value: m for m in TcbStatus}
EVIDENCE_NAMES = {m.value: m for m in EvidenceType}
# Byte lengths of the hex claims, so a literal of the wrong length is a check error.
HEX_CLAIM_BYTES = {
    "mrenclave": 32,
    "mrsigner": 32,
    "attributes": 16,
    "config_id": 64,
    "isv_ext_prod_id": 16,
    "isv_family_id": 16,
    "report_data": 64,
    "fmspc": 6,
    "pck_certificate_sha256": 32,
}


def hex_bytes(type_name: str) -> int | None:
    """``hex32`` -> 32, ``hex`` -> None (any length)."""
    return int(type_name[3:]) if type_name.startswith("hex") and len(type_name) > 3 else None


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hex_problem(text: str) -> str | None:
    """Why ``text`` is not a whole number of hex bytes (None: it is), saying what was found."""
    bad = next((c for c in text if c not in _HEX_DIGITS), None)
    if bad is not None:
        return f"is not hex: {bad!r} at position {text.index(bad) + 1} is not a hex digit"
    if len(text) % 2:
        return f"has {len(text)} hex digits, an odd number (two digits per byte)"
    return None


def is_hex(type_name: str) -> bool:
    return type_name.startswith("hex")


def claim_type(name: str) -> str:
    if name in HEX_CLAIM_BYTES:
        return f"hex{HEX_CLAIM_BYTES[name]}"
    return CLAIM_TYPES[name]


@dataclass(frozen=True, slots=True)
class TExpr:
    """A resolved, typed expression. ``kind`` is one of: claim, value, rule, cmp, in, mask, not, and, or."""

    kind: str
    type: str  # "bool", "int", "hex32", ..., "set", "list"
    node: ast.Node  # the source, for positions and for messages
    name: str = ""  # claim or rule name; comparison operator
    value: Any = None  # for kind "value": the normalised Python value
    elem: str = ""  # element type of a set/list value or claim
    args: tuple[TExpr, ...] = ()


@dataclass(slots=True)
class Symbol:
    kind: str  # const, set, key, rule, host, enclave, enroll
    node: Any
    module: ast.Module
    typed: TExpr | None = None  # consts, sets, rules (after checking)


@dataclass(slots=True)
class Program:
    """All modules of a policy with its symbol table, checked."""

    modules: list[ast.Module]
    sources: dict[str, bytes]  # file name -> exact bytes (policy files and reference lists)
    symbols: dict[str, Symbol] = field(default_factory=dict)
    errors: list[PolicyError] = field(default_factory=list)
    base_dirs: dict[str, PurePath | None] = field(default_factory=dict)  # file -> where its imports resolve
    syntax_errors: int = 0  # how many of ``errors`` are syntax errors (their files checked as far as they parsed)
    skipped: list[str] = field(default_factory=list)  # source text that syntax recovery dropped

    def error(self, message: str, pos: ast.Pos, hint: str | None = None) -> None:
        self.errors.append(PolicyError(message, location=_loc(pos), hint=hint))

    def _echo(self, e: PolicyError) -> bool:
        """A semantic error caused by a syntax error: a name declared or a setting written in text
        that syntax recovery skipped is not unknown or missing, only unreadable."""
        if not self.skipped:
            return False
        m = _ECHO.search(e.message)
        if m is None:
            return False
        name = m.group(1) or m.group(2)
        return any(re.search(rf"\b{re.escape(name)}\b", text) for text in self.skipped)

    def raise_if_errors(self) -> None:
        if self.errors:
            errors = sorted(
                (e for e in self.errors if not self._echo(e)),
                key=lambda e: (
                    (e.location.file or "") if e.location else "",
                    (e.location.line or 0) if e.location else 0,
                    (e.location.column or 0) if e.location else 0,
                ),
            )
            raise PolicyErrors(errors)


_ECHO = re.compile(r"^unknown (?:name|host policy|enclave policy|key) '([^']+)'|needs '(\w+) = \.\.\.'")

class PolicySources(Protocol):
    """Where the files a policy names (imports, reference lists, keys) come from. The language
    reads nothing itself: the shell hands it :class:`floodlight_trust.policy_files.PolicyFiles`
    (the disk), a test may hand it a dictionary's worth of bytes."""

    def read(self, path: PurePath) -> bytes:
        """The exact bytes of ``path``, or an FtrustError (located) when it cannot be read."""
        ...

    def name(self, path: PurePath) -> str:
        """The stable name of ``path`` in locations, cycle checks and the policy version."""
        ...


def load_program(
    text: str,
    filename: str,
    base_dir: PurePath | None,
    sources: PolicySources | None = None,
    source_bytes: bytes | None = None,
) -> Program:
    """Parse ``text`` and everything it imports (relative to ``base_dir``, read from ``sources``;
    without them an import is a located error); collect syntax errors."""
    return load_programs([(text, filename, base_dir, source_bytes)], sources)


Root = tuple[str, str, PurePath | None, bytes | None]  # text, file name, base directory, exact bytes


def load_programs(roots: list[Root], sources: PolicySources | None = None) -> Program:
    """One program from several root files (a policy directory) and everything they import; a file
    reached twice is loaded once, so the roots share one namespace as imports do."""
    program = Program([], {})
    seen: set[str] = set()

    def visit(text: str, filename: str, directory: PurePath | None, stack: tuple[str, ...]) -> None:
        seen.add(filename)
        parsed = parse_recovering(text, filename)
        program.errors.extend(parsed.errors)
        program.syntax_errors += len(parsed.errors)
        program.skipped.extend(parsed.skipped)
        module = parsed.module
        if module is None:
            return
        program.modules.append(module)
        program.base_dirs[filename] = directory
        for decl in module.decls:
            if not isinstance(decl, ast.Import):
                continue
            if directory is None or sources is None:
                program.error("import needs a base directory (compile from a file)", decl.pos)
                continue
            target = directory / decl.path.value
            name = sources.name(target)
            if name in stack:
                cycle = " -> ".join((*stack[stack.index(name) :], name))
                program.error(f"import cycle: {cycle}", decl.path.pos)
                continue
            if name in seen:
                continue
            try:
                data = sources.read(target)
                sub = data.decode("utf-8")
            except FtrustError as e:
                program.error(f"cannot import {decl.path.value!r}: {e.message}", decl.path.pos)
                continue
            except UnicodeDecodeError:
                program.error(f"cannot import {decl.path.value!r}: not UTF-8 text", decl.path.pos)
                continue
            program.sources[name] = data
            visit(sub, name, target.parent, (*stack, name))

    for text, filename, base_dir, source_bytes in roots:
        if filename in seen:
            continue
        program.sources[filename] = source_bytes if source_bytes is not None else text.encode("utf-8")
        visit(text, filename, base_dir, (filename,))
    return program


# ---- checking --------------------------------------------------------------------------------


class Checker:
    def __init__(self, program: Program):
        self.p = program

    def run(self) -> None:
        self.declare()
        for sym in list(self.p.symbols.values()):
            if sym.kind in ("const", "set", "key") and sym.typed is None:
                self.typed_symbol(sym, ())
        for sym in list(self.p.symbols.values()):
            if sym.kind == "rule" and sym.typed is None:
                self.typed_symbol(sym, ())

    def declare(self) -> None:
        for module in self.p.modules:
            for decl in module.decls:
                if isinstance(decl, ast.Import):
                    continue
                kind = {
                    ast.Const: "const",
                    ast.SetDecl: "set",
                    ast.KeyDecl: "key",
                    ast.RuleDecl: "rule",
                    ast.HostDecl: "host",
                    ast.EnclaveDecl: "enclave",
                    ast.EnrollDecl: "enroll",
                }[type(decl)]
                name: str = getattr(decl, "name")  # noqa: B009 - every non-import declaration is named
                if name in self.p.symbols:
                    first = self.p.symbols[name].node.pos
                    self.p.error(f"duplicate name {name!r} (first declared at {first})", decl.pos)
                    continue
                if name in CLAIM_TYPES or name in TCB_NAMES or name in EVIDENCE_NAMES:
                    self.p.error(f"{name!r} is a claim or built-in name and cannot be redeclared", decl.pos)
                    continue
                self.p.symbols[name] = Symbol(kind, decl, module)

    def names_for_expr(self) -> list[str]:
        return [
            *CLAIM_TYPES,
            *TCB_NAMES,
            *EVIDENCE_NAMES,
            *(n for n, s in self.p.symbols.items() if s.kind in ("const", "set", "rule")),
        ]

    def typed_symbol(self, sym: Symbol, stack: tuple[str, ...]) -> TExpr | None:
        if sym.typed is not None:
            return sym.typed
        name = sym.node.name
        if name in stack:
            self.p.error(f"{sym.kind} {name!r} refers to itself: {' -> '.join((*stack, name))}", sym.node.pos)
            return None
        stack = (*stack, name)
        if sym.kind == "rule":
            typed = self.expr(sym.node.expr, stack)
            if typed is not None and typed.type != "bool":
                self.p.error(f"rule {name!r} must be a condition, not a {typed.type}", sym.node.expr.pos)
                typed = None
            if typed is not None:
                typed = TExpr("rule", "bool", sym.node, name=name, args=(typed,))
        else:
            typed = self.expr(sym.node.value, stack)
            if typed is not None and typed.kind != "value":
                self.p.error(f"a {sym.kind} holds literal values, not {describe(typed)}", sym.node.value.pos)
                typed = None
            if sym.kind == "key" and typed is not None:
                typed = self.key_ids(typed)
        sym.typed = typed
        return typed

    def key_ids(self, typed: TExpr) -> TExpr | None:
        values = typed.value if typed.type == "set" else {typed.value} if typed.type == "str" else None
        if typed.kind != "value" or values is None:
            self.p.error("a key is a hex key id or a set of key ids", typed.node.pos)
            return None
        ids = set()
        for v in values:
            text = str(v).lower()
            problem = hex_problem(text)
            if problem is not None:
                self.p.error(f"key id {v!r} {problem}", typed.node.pos)
                continue
            raw = bytes.fromhex(text)
            if len(raw) != 4:
                self.p.error(
                    f"key id {v!r} has {len(raw)} bytes; IMA signature key ids are 4 bytes (8 hex digits)",
                    typed.node.pos,
                )
            ids.add(text)
        return TExpr("value", "set", typed.node, value=frozenset(ids), elem="hex")

    # expressions
    def expr(self, node: ast.Node, stack: tuple[str, ...] = ()) -> TExpr | None:
        method: Callable[[Any, tuple[str, ...]], TExpr | None] = getattr(self, "x_" + type(node).__name__)
        return method(node, stack)

    def x_Str(self, node: ast.Str, stack: tuple[str, ...]) -> TExpr:
        return TExpr("value", "str", node, value=node.value)

    def x_Int(self, node: ast.Int, stack: tuple[str, ...]) -> TExpr:
        return TExpr("value", "int", node, value=node.value)

    def x_Bool(self, node: ast.Bool, stack: tuple[str, ...]) -> TExpr:
        return TExpr("value", "bool", node, value=node.value)

    def x_Duration(self, node: ast.Duration, stack: tuple[str, ...]) -> TExpr:
        return TExpr("value", "duration", node, value=node.seconds)

    def _collection(self, node: ast.SetLit | ast.ListLit, stack: tuple[str, ...], kind: str) -> TExpr | None:
        items: list[Any] = []
        typed_items: list[TExpr] = []
        elem = ""
        ok = True
        for item in node.items:
            t = self.expr(item, stack)
            if t is None:
                ok = False
                continue
            if t.kind != "value" or t.type in ("set", "list"):
                self.p.error(f"a {kind} holds literal values or constants, not {describe(t)}", item.pos)
                ok = False
                continue
            if elem and t.type != elem:
                self.p.error(f"mixed {kind}: {t.type} among {elem} values", item.pos)
                ok = False
                continue
            elem = t.type
            items.append(t.value)
            typed_items.append(t)
        if not ok:
            return None
        value = frozenset(items) if kind == "set" else tuple(items)
        # The items stay in args so that coercion errors point at the offending item.
        return TExpr("value", kind, node, value=value, elem=elem or "str", args=tuple(typed_items))

    def x_SetLit(self, node: ast.SetLit, stack: tuple[str, ...]) -> TExpr | None:
        return self._collection(node, stack, "set")

    def x_ListLit(self, node: ast.ListLit, stack: tuple[str, ...]) -> TExpr | None:
        return self._collection(node, stack, "list")

    def x_Ref(self, node: ast.Ref, stack: tuple[str, ...]) -> TExpr | None:
        name = node.name
        if name in CLAIM_TYPES:
            ctype = claim_type(name)
            if ctype == "str_list":
                return TExpr("claim", "list", node, name=name, elem="str")
            return TExpr("claim", ctype, node, name=name)
        if name in TCB_NAMES:
            return TExpr("value", "tcb_status", node, value=TCB_NAMES[name])
        if name in EVIDENCE_NAMES:
            return TExpr("value", "evidence_type", node, value=EVIDENCE_NAMES[name])
        sym = self.p.symbols.get(name)
        if sym is None:
            self.p.error(f"unknown name {name!r}", node.pos, suggest(name, self.names_for_expr()))
            return None
        if sym.kind not in ("const", "set", "rule"):
            self.p.error(f"{name!r} is a {sym.kind}, not a value or rule", node.pos)
            return None
        typed = self.typed_symbol(sym, stack)
        if typed is None:
            return None
        if sym.kind == "rule":
            return typed
        # A named constant or set: keep the reference node for messages, the value for evaluation.
        return TExpr("value", typed.type, node, name=name, value=typed.value, elem=typed.elem, args=typed.args)

    def x_Not(self, node: ast.Not, stack: tuple[str, ...]) -> TExpr | None:
        t = self.expr(node.operand, stack)
        if t is None:
            return None
        if t.type != "bool":
            self.p.error(f"'not' needs a condition, got {describe(t)}", node.operand.pos)
            return None
        return TExpr("not", "bool", node, args=(t,))

    def _logic(self, node: ast.And | ast.Or, stack: tuple[str, ...], kind: str) -> TExpr | None:
        left, right = self.expr(node.left, stack), self.expr(node.right, stack)
        ok = left is not None and right is not None
        for side, t in ((node.left, left), (node.right, right)):
            if t is not None and t.type != "bool":
                self.p.error(f"'{kind}' needs conditions on both sides, got {describe(t)}", side.pos)
                ok = False
        if not ok:
            return None
        assert left is not None and right is not None
        return TExpr(kind, "bool", node, args=(left, right))

    def x_And(self, node: ast.And, stack: tuple[str, ...]) -> TExpr | None:
        return self._logic(node, stack, "and")

    def x_Or(self, node: ast.Or, stack: tuple[str, ...]) -> TExpr | None:
        return self._logic(node, stack, "or")

    def coerce(self, t: TExpr, target: str) -> TExpr | None:
        """Give a literal (or set/list of literals) the type ``target``; check and normalise it."""
        if t.kind != "value":
            return t
        if t.type in ("set", "list"):
            if t.elem == target or not t.value:
                return TExpr(t.kind, t.type, t.node, t.name, t.value, target)
            if t.elem != "str" or not (is_hex(target) or target in ("tcb_status", "evidence_type")):
                return t
            values = []
            located = t.args if len(t.args) else tuple(TExpr("value", "str", t.node, value=v) for v in t.value)
            failed = False
            for item in located:
                c = self.coerce_scalar(item.value, target, item.node)
                if c is None:
                    failed = True
                values.append(c)
            if failed:
                return None
            value = frozenset(values) if t.type == "set" else tuple(values)
            return TExpr("value", t.type, t.node, t.name, value, target)
        if t.type == "str" and (is_hex(target) or target in ("tcb_status", "evidence_type")):
            c = self.coerce_scalar(t.value, target, t.node)
            return None if c is None else TExpr("value", target, t.node, t.name, c)
        return t

    def coerce_scalar(self, v: Any, target: str, node: ast.Node) -> Any:
        if is_hex(target):
            text = str(v).lower()
            if text.startswith("0x"):
                text = text[2:]
            want = hex_bytes(target)
            problem = hex_problem(text)
            if problem is not None and want is not None and problem.startswith("has"):
                problem = f"has {len(text)} hex digits; expected {2 * want} hex digits ({want} bytes)"
            if problem is not None:
                self.p.error(f"{v!r} {problem}", node.pos)
                return None
            raw = bytes.fromhex(text)
            if want is not None and len(raw) != want:
                self.p.error(f"{v!r} has {len(raw)} bytes; expected {want} bytes ({2 * want} hex digits)", node.pos)
                return None
            return text
        if target == "tcb_status":
            if v not in TCB_NAMES:
                self.p.error(f"unknown TCB status {v!r}", node.pos, suggest(str(v), TCB_NAMES))
                return None
            return TCB_NAMES[v]
        if target == "evidence_type":
            if v not in EVIDENCE_NAMES:
                self.p.error(f"unknown evidence type {v!r}", node.pos, suggest(str(v), EVIDENCE_NAMES))
                return None
            return EVIDENCE_NAMES[v]
        return v

    def x_Compare(self, node: ast.Compare, stack: tuple[str, ...]) -> TExpr | None:
        left, right = self.expr(node.left, stack), self.expr(node.right, stack)
        if left is None or right is None:
            return None
        right_c: TExpr | None
        left_c: TExpr | None
        if left.kind == "value" and right.kind != "value":
            right_c = right
            left_c = self.coerce(left, right.type)
        else:
            left_c = left
            right_c = self.coerce(right, left.type)
        if left_c is None or right_c is None:
            return None
        if left_c.type != right_c.type or left_c.type in ("set", "list"):
            self.p.error(f"cannot compare {describe(left_c)} with {describe(right_c)}", node.pos)
            return None
        if node.op in ("<", "<=", ">", ">=") and left_c.type != "int":
            self.p.error(f"'{node.op}' compares integers; {describe(left_c)} is not one", node.pos)
            return None
        return TExpr("cmp", "bool", node, name=node.op, args=(left_c, right_c))

    def x_In(self, node: ast.In, stack: tuple[str, ...]) -> TExpr | None:
        left, right = self.expr(node.left, stack), self.expr(node.right, stack)
        if left is None or right is None:
            return None
        if right.type not in ("set", "list"):
            self.p.error(f"'in' needs a set or list on the right, got {describe(right)}", node.right.pos)
            return None
        if right.kind == "claim":  # "INTEL-SA-00615" in advisory_ids
            left_c = self.coerce(left, right.elem)
            right_c: TExpr | None = right
        else:
            left_c = left
            right_c = self.coerce(right, left.type)
        if left_c is None or right_c is None:
            return None
        if right_c.value and left_c.type != right_c.elem:
            self.p.error(f"cannot look for {describe(left_c)} in a set of {right_c.elem}", node.pos)
            return None
        return TExpr("in", "bool", node, name="not in" if node.negated else "in", args=(left_c, right_c))

    def x_Mask(self, node: ast.Mask, stack: tuple[str, ...]) -> TExpr | None:
        left, right = self.expr(node.left, stack), self.expr(node.right, stack)
        if left is None or right is None:
            return None
        if left.type != "int" and not is_hex(left.type):
            self.p.error(f"'&' masks hex or integer claims, not {describe(left)}", node.left.pos)
            return None
        right_c = self.coerce(right, left.type)
        if right_c is None:
            return None
        if right_c.type != left.type:
            self.p.error(f"mask of {describe(right_c)} does not fit {describe(left)}", node.right.pos)
            return None
        return TExpr("mask", left.type, node, args=(left, right_c))


def describe(t: TExpr) -> str:
    if t.kind == "claim":
        return f"claim {t.name} ({t.type})"
    if t.type in ("set", "list"):
        return f"a {t.type} of {t.elem}"
    if t.kind == "value":
        return f"a {t.type} value"
    return f"a {t.type}"


def check(program: Program) -> Checker:
    checker = Checker(program)
    checker.run()
    return checker
