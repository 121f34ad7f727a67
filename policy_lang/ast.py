"""The policy syntax tree. Every node carries its source position (``pos``).

Nodes are frozen dataclasses; the parser builds them, the checker and compiler read them, and the
formatter prints them back. Nothing here knows about claims or evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Pos:
    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @property
    def short(self) -> str:
        """``file:line``, the form reasons carry."""
        return f"{self.file}:{self.line}"


NOWHERE = Pos("<builtin>", 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Node:
    pos: Pos = field(kw_only=True, compare=False)


# ---- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str
    raw: str = field(default="", compare=False)  # the literal as written, quotes included


@dataclass(frozen=True, slots=True)
class Int(Node):
    value: int
    text: str  # as written (decimal or 0x...), so the formatter keeps the author's base


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Duration(Node):
    seconds: int
    text: str


@dataclass(frozen=True, slots=True)
class SetLit(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class In(Node):
    left: Expr
    right: Expr
    negated: bool


@dataclass(frozen=True, slots=True)
class Mask(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Expr


@dataclass(frozen=True, slots=True)
class And(Node):
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or(Node):
    left: Expr
    right: Expr


Expr = Ref | Str | Int | Bool | Duration | SetLit | ListLit | Compare | In | Mask | Not | And | Or
Literal = Str | Int | Bool | Duration


# ---- statements inside blocks ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting(Node):
    """``name = value`` inside a host, enclave, enroll or certificate block."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Allow(Node):
    path: Str  # exact path or glob
    digests: Expr


@dataclass(frozen=True, slots=True)
class AllowAny(Node):
    digests: Expr


@dataclass(frozen=True, slots=True)
class IncludeSha256sum(Node):
    path: Str


@dataclass(frozen=True, slots=True)
class IncludeKeylime(Node):
    path: Str
    verify_with: Str | None


@dataclass(frozen=True, slots=True)
class Exclude(Node):
    pattern: Str
    regex: bool


@dataclass(frozen=True, slots=True)
class RequireMeasured(Node):
    pattern: Str


@dataclass(frozen=True, slots=True)
class RequireSignature(Node):
    pattern: Str
    key: Ref


@dataclass(frozen=True, slots=True)
class EntryFieldIn(Node):
    """``template in {...}``, ``hash_algorithm in {...}``, ``boot_aggregate in {...}``."""

    field_name: str
    value: Expr


HostStmt = (
    Allow
    | AllowAny
    | IncludeSha256sum
    | IncludeKeylime
    | Exclude
    | RequireMeasured
    | RequireSignature
    | EntryFieldIn
    | Setting
)


@dataclass(frozen=True, slots=True)
class EnclaveRule(Node):
    name: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class Advisories(Node):
    mode: str  # "deny" or "tolerate"
    value: Expr


@dataclass(frozen=True, slots=True)
class Grant(Node):
    """``grant METHOD "/path/pattern"`` in an enroll rule: one REST call the VNF may make."""

    method: str
    method_pos: Pos = field(compare=False)
    pattern: Str


@dataclass(frozen=True, slots=True)
class CertificateBlock(Node):
    settings: tuple[Setting, ...]


# ---- declarations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import(Node):
    path: Str


@dataclass(frozen=True, slots=True)
class Const(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class SetDecl(Node):
    name: str
    value: SetLit


@dataclass(frozen=True, slots=True)
class KeyDecl(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class RuleDecl(Node):
    name: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class HostDecl(Node):
    name: str
    body: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class EnclaveDecl(Node):
    name: str
    body: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class EnrollDecl(Node):
    name: str
    pattern: Str
    body: tuple[Node, ...]


Decl = Import | Const | SetDecl | KeyDecl | RuleDecl | HostDecl | EnclaveDecl | EnrollDecl


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    column: int
    text: str  # including the leading '#'
    own_line: bool  # nothing but whitespace before it on its line


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed policy file."""

    file: str
    decls: tuple[Node, ...]
    comments: tuple[Comment, ...] = ()
