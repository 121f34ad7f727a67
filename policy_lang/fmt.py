"""The canonical form of policy files (``ftrust policy fmt``).

Canonical means: 4-space indentation, one statement per line, single spaces around operators,
minimal parentheses, sets on one line when they fit in 100 columns (else one item per line with a
trailing comma), at most one blank line between statements (kept where the author put one, always
around blocks). Comments are kept: own-line comments before the statement or set item they precede,
trailing comments after the line they were on. Formatting is idempotent.
"""

from __future__ import annotations

from policy_lang import ast
from policy_lang.parser import parse

WIDTH = 100
INDENT = "    "

_PREC = {ast.Or: 1, ast.And: 2, ast.Not: 3, ast.Compare: 4, ast.In: 4, ast.Mask: 5}


def _quote(s: ast.Str) -> str:
    if s.raw:
        return s.raw
    return '"' + s.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _prec(node: ast.Node) -> int:
    return _PREC.get(type(node), 6)


def format_expr(node: ast.Node) -> str:
    """One-line text of an expression (also used to name conditions in reasons)."""
    if isinstance(node, ast.Str):
        return _quote(node)
    if isinstance(node, ast.Int | ast.Duration):
        return node.text
    if isinstance(node, ast.Bool):
        return "true" if node.value else "false"
    if isinstance(node, ast.Ref):
        return node.name
    if isinstance(node, ast.SetLit):
        return "{" + ", ".join(format_expr(i) for i in node.items) + "}"
    if isinstance(node, ast.ListLit):
        return "[" + ", ".join(format_expr(i) for i in node.items) + "]"
    if isinstance(node, ast.Not):
        return "not " + _wrap(node.operand, 3, False)
    if isinstance(node, ast.And | ast.Or):
        op = "and" if isinstance(node, ast.And) else "or"
        p = _prec(node)
        return f"{_wrap(node.left, p, False)} {op} {_wrap(node.right, p, False)}"
    if isinstance(node, ast.Compare | ast.In):
        op = node.op if isinstance(node, ast.Compare) else ("not in" if node.negated else "in")
        return f"{_wrap(node.left, 4, True)} {op} {_wrap(node.right, 4, True)}"
    if isinstance(node, ast.Mask):
        return f"{_wrap(node.left, 5, False)} & {_wrap(node.right, 5, True)}"
    raise TypeError(f"not an expression: {type(node).__name__}")


def _wrap(node: ast.Node, parent: int, strict: bool) -> str:
    text = format_expr(node)
    p = _prec(node)
    if p < parent or (strict and p == parent):
        return f"({text})"
    return text


class Formatter:
    def __init__(self, module: ast.Module):
        self.module = module
        self.comments = list(module.comments)
        self.used: set[int] = set()
        self.lines: list[str] = []
        self.last_line = 0  # last source line emitted, to keep the author's blank lines

    def _gap(self, line: int) -> None:
        """Keep (one) blank line where the source had one, except right after an opening brace."""
        if line - self.last_line > 1 and self.lines and self.lines[-1] and not self.lines[-1].endswith(("{", "[")):
            self.lines.append("")

    # comments
    def _own_before(self, line: int, indent: str) -> None:
        for i, c in enumerate(self.comments):
            if i not in self.used and c.line < line:
                self.used.add(i)
                self._gap(c.line)
                self.lines.append(indent + c.text)
                self.last_line = c.line

    def _trailing(self, first: int, last: int) -> str:
        parts = []
        for i, c in enumerate(self.comments):
            if i not in self.used and first <= c.line <= last and not c.own_line:
                self.used.add(i)
                parts.append(c.text)
        return ("  " + " ".join(parts)) if parts else ""

    def _has_comments(self, pos: ast.Pos) -> bool:
        start, end = (pos.line, pos.column), (pos.end_line, pos.end_column)
        return any(i not in self.used and start < (c.line, c.column) < end for i, c in enumerate(self.comments))

    def _first_line(self, node: ast.Node, prev_end: int) -> int:
        """The first line of ``node`` including the own-line comments just above it."""
        first = node.pos.line
        for i, c in enumerate(self.comments):
            if i not in self.used and prev_end < c.line < first and c.own_line:
                first = min(first, c.line)
        return first

    # values
    def value(self, node: ast.Node, indent: str, prefix: str) -> list[str]:
        """Lines for ``prefix`` + value; multi-line for long sets/lists or ones holding comments."""
        if isinstance(node, ast.SetLit | ast.ListLit) and node.items:
            one = prefix + format_expr(node)
            commented = self._has_comments(node.pos)
            if len(indent + one) <= WIDTH and not commented:
                return [one]
            open_, close = ("{", "}") if isinstance(node, ast.SetLit) else ("[", "]")
            out = [prefix + open_ + self._trailing(node.pos.line, node.pos.line)]
            inner = indent + INDENT
            self.last_line = node.pos.line
            for n, item in enumerate(node.items):
                before = len(self.lines)
                self._own_before(item.pos.line, inner)
                self._gap(item.pos.line)
                chunk = [line[len(indent) :] for line in self.lines[before:]]
                del self.lines[before:]
                if n == 0:
                    while chunk and not chunk[0]:
                        chunk.pop(0)
                out.extend(chunk)
                out.append(INDENT + format_expr(item) + "," + self._trailing(item.pos.line, item.pos.end_line))
                self.last_line = item.pos.end_line
            before = len(self.lines)
            self._own_before(node.pos.end_line, inner)
            out.extend(line[len(indent) :] for line in self.lines[before:])
            del self.lines[before:]
            out.append(close)
            return out
        return [prefix + format_expr(node)]

    def emit(self, lines: list[str], indent: str, first: int, last: int) -> None:
        tail = self._trailing(first, last)
        for i, line in enumerate(lines):
            self.lines.append(indent + line + (tail if i == len(lines) - 1 else ""))

    # statements
    def statement(self, s: ast.Node, indent: str) -> None:
        start, end = s.pos.line, s.pos.end_line
        if isinstance(s, ast.Allow):
            lines = self.value(s.digests, indent, f"allow {_quote(s.path)} digest in ")
        elif isinstance(s, ast.AllowAny):
            lines = self.value(s.digests, indent, "allow any digest in ")
        elif isinstance(s, ast.IncludeSha256sum):
            lines = [f"include sha256sum {_quote(s.path)}"]
        elif isinstance(s, ast.IncludeKeylime):
            key = f" verify_with {_quote(s.verify_with)}" if s.verify_with else ""
            lines = [f"include keylime {_quote(s.path)}{key}"]
        elif isinstance(s, ast.Exclude):
            lines = [f"exclude {'regex ' if s.regex else ''}{_quote(s.pattern)}"]
        elif isinstance(s, ast.RequireMeasured):
            lines = [f"require measured {_quote(s.pattern)}"]
        elif isinstance(s, ast.RequireSignature):
            lines = [f"require signature {_quote(s.pattern)} by {s.key.name}"]
        elif isinstance(s, ast.EntryFieldIn):
            lines = self.value(s.value, indent, f"{s.field_name} in ")
        elif isinstance(s, ast.Setting):
            lines = self.value(s.value, indent, f"{s.name} = ")
        elif isinstance(s, ast.EnclaveRule):
            lines = [f"{s.name}: {format_expr(s.expr)}"]
        elif isinstance(s, ast.Advisories):
            lines = self.value(s.value, indent, f"{s.mode} advisories ")
        elif isinstance(s, ast.Grant):
            lines = [f"grant {s.method} {_quote(s.pattern)}"]
        elif isinstance(s, ast.CertificateBlock):
            self.block("certificate", s.settings, s, indent)
            return
        else:
            raise TypeError(type(s).__name__)
        self.emit(lines, indent, start, end)

    def block(self, header: str, body: tuple[ast.Node, ...], node: ast.Node, indent: str) -> None:
        first_body = body[0].pos.line if body else node.pos.end_line
        self.lines.append(indent + header + " {" + self._trailing(node.pos.line, min(node.pos.line, first_body - 1)))
        inner = indent + INDENT
        self.last_line = node.pos.line
        for s in body:
            self._own_before(s.pos.line, inner)
            self._gap(s.pos.line)
            self.statement(s, inner)
            self.last_line = s.pos.end_line
        self._own_before(node.pos.end_line, inner)
        self.last_line = node.pos.end_line
        self.lines.append(indent + "}" + self._trailing(node.pos.end_line, node.pos.end_line))

    def decl(self, d: ast.Node) -> None:
        start, end = d.pos.line, d.pos.end_line
        if isinstance(d, ast.Import):
            self.emit([f"import {_quote(d.path)}"], "", start, end)
        elif isinstance(d, ast.Const):
            self.emit(self.value(d.value, "", f"const {d.name} = "), "", start, end)
        elif isinstance(d, ast.SetDecl):
            self.emit(self.value(d.value, "", f"set {d.name} = "), "", start, end)
        elif isinstance(d, ast.KeyDecl):
            self.emit(self.value(d.value, "", f"key {d.name} = "), "", start, end)
        elif isinstance(d, ast.RuleDecl):
            self.emit([f"rule {d.name} = {format_expr(d.expr)}"], "", start, end)
        elif isinstance(d, ast.HostDecl):
            self.block(f"host {d.name}", d.body, d, "")
        elif isinstance(d, ast.EnclaveDecl):
            self.block(f"enclave {d.name}", d.body, d, "")
        elif isinstance(d, ast.EnrollDecl):
            self.block(f"enroll {d.name} for {_quote(d.pattern)}", d.body, d, "")
        else:
            raise TypeError(type(d).__name__)

    def run(self) -> str:
        prev_block = False
        for i, d in enumerate(self.module.decls):
            block = isinstance(d, ast.HostDecl | ast.EnclaveDecl | ast.EnrollDecl)
            first = self._first_line(d, self.last_line)
            if i and (block or prev_block) and self.lines and self.lines[-1]:
                self.lines.append("")  # blocks always stand apart, with their leading comments
                self.last_line = first - 1
            self._own_before(d.pos.line, "")
            self._gap(d.pos.line)
            self.decl(d)
            self.last_line = d.pos.end_line
            prev_block = block
        self._own_before(10**9, "")
        return "\n".join(self.lines) + "\n" if self.lines else ""


def format_module(module: ast.Module) -> str:
    return Formatter(module).run()


def format_text(text: str, filename: str = "<policy>") -> str:
    """The canonical form of a policy file's text. Raises PolicyError on a syntax error."""
    return format_module(parse(text, filename))
