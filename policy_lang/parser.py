"""Policy text to syntax tree (:mod:`policy_lang.ast`), with located, readable syntax errors."""

from __future__ import annotations

import functools
import itertools
import pkgutil
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from floodlight_trust.errors import Location, PolicyError
from policy_lang import ast

# Words with a fixed meaning; a misspelt one gets a "did you mean" hint.
KEYWORDS = (
    "import const set key rule host enclave enroll for allow any digest in not and or include sha256sum "
    "keylime verify_with exclude regex require measured signature by template hash_algorithm "
    "boot_aggregate deny tolerate advisories certificate grant true false"
).split()

_TOKEN_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "INT": "an integer",
    "HEXINT": "a hex integer",
    "DURATION": "a duration (e.g. 30d)",
    "CMP_OP": "a comparison",
    "$END": "end of file",
}


def _grammar() -> str:
    # pkgutil (which lark imports anyway) rather than importlib.resources, whose import (tempfile,
    # zipfile, ...) was a few per cent of a fresh `ftrust policy` command's start-up.
    data = pkgutil.get_data("policy_lang", "grammar.lark")
    assert data is not None  # a package on a file system or in a zip archive: its loader reads data
    return data.decode("utf-8")


@functools.cache
def _lark() -> Lark:
    text = _grammar()
    cache = {"cache": _tables_file} if _tables_file else {}
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True, **cache)


_tables_file: str | None = None


def keep_tables_in(path: str | None) -> None:
    """Have lark keep the parser's LALR tables in ``path`` between processes (before the first parse).

    Building them took a third of a fresh ``ftrust policy`` command's own start-up. Lark writes the
    file under a SHA-256 of the grammar, its options and lark's version, and builds the tables
    again when any of those changed. The file is a pickle: the shell chooses a path only its
    owner can write (``cli/policy.py``: beside the package's bytecode); this module opens no file.
    """
    global _tables_file
    _tables_file = path


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(n, "\\" + n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Build(Transformer[Token, Any]):
    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.errors: list[PolicyError] = []  # malformed literals: reported, the tree still built

    def _pos(self, meta: Any) -> ast.Pos:
        if getattr(meta, "empty", True) and not hasattr(meta, "line"):
            return ast.Pos(self.file, 0, 0, 0, 0)
        return ast.Pos(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tpos(self, tok: Token) -> ast.Pos:
        return ast.Pos(self.file, tok.line or 0, tok.column or 0, tok.end_line or tok.line or 0, tok.end_column or 0)

    def _str(self, tok: Token) -> ast.Str:
        return ast.Str(_unquote(str(tok)), str(tok), pos=self._tpos(tok))

    # literals
    def string(self, children: list[Token]) -> ast.Str:
        return self._str(children[0])

    def int(self, children: list[Token]) -> ast.Int:
        return ast.Int(int(children[0]), str(children[0]), pos=self._tpos(children[0]))

    def hexint(self, children: list[Token]) -> ast.Int:
        return ast.Int(int(str(children[0]), 16), str(children[0]), pos=self._tpos(children[0]))

    def duration(self, children: list[Token]) -> ast.Duration:
        text = str(children[0])
        return ast.Duration(int(text[:-1]) * _DURATION_UNITS[text[-1]], text, pos=self._tpos(children[0]))

    def bad_number(self, children: list[Token]) -> ast.Int | ast.Duration:
        tok = children[0]
        text, pos = str(tok), self._tpos(tok)
        where = Location(self.file, pos.line, pos.column)
        if text[:2].lower() == "0x":
            self.errors.append(PolicyError(f"{text!r} is not a hex integer", location=where, hint="e.g. 0x1f"))
            return ast.Int(0, text, pos=pos)
        digits = len(text) - len(text.lstrip("0123456789"))
        self.errors.append(
            PolicyError(
                f"{text!r} is not a duration: the unit {text[digits:]!r} is not one of s, m, h, d",
                location=where,
                hint=f"e.g. {text[:digits]}d (days), {text[:digits]}h (hours)",
            )
        )
        return ast.Duration(0, text, pos=pos)  # a duration was meant: no second error where one is expected

    @v_args(meta=True)
    def true(self, meta: Any, children: list[Any]) -> ast.Bool:
        return ast.Bool(True, pos=self._pos(meta))

    @v_args(meta=True)
    def false(self, meta: Any, children: list[Any]) -> ast.Bool:
        return ast.Bool(False, pos=self._pos(meta))

    def ref(self, children: list[Token]) -> ast.Ref:
        return ast.Ref(str(children[0]), pos=self._tpos(children[0]))

    @v_args(meta=True)
    def set_lit(self, meta: Any, children: list[Any]) -> ast.SetLit:
        return ast.SetLit(tuple(c for c in children if c is not None), pos=self._pos(meta))

    @v_args(meta=True)
    def list_lit(self, meta: Any, children: list[Any]) -> ast.ListLit:
        return ast.ListLit(tuple(c for c in children if c is not None), pos=self._pos(meta))

    # expressions
    @v_args(meta=True)
    def or_(self, meta: Any, c: list[Any]) -> ast.Or:
        return ast.Or(c[0], c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def and_(self, meta: Any, c: list[Any]) -> ast.And:
        return ast.And(c[0], c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, c: list[Any]) -> ast.Not:
        return ast.Not(c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def compare(self, meta: Any, c: list[Any]) -> ast.Compare:
        return ast.Compare(str(c[1]), c[0], c[2], pos=self._pos(meta))

    @v_args(meta=True)
    def in_(self, meta: Any, c: list[Any]) -> ast.In:
        return ast.In(c[0], c[1], False, pos=self._pos(meta))

    @v_args(meta=True)
    def not_in(self, meta: Any, c: list[Any]) -> ast.In:
        return ast.In(c[0], c[1], True, pos=self._pos(meta))

    @v_args(meta=True)
    def mask(self, meta: Any, c: list[Any]) -> ast.Mask:
        return ast.Mask(c[0], c[1], pos=self._pos(meta))

    # declarations
    @v_args(meta=True)
    def import_decl(self, meta: Any, c: list[Any]) -> ast.Import:
        return ast.Import(self._str(c[0]), pos=self._pos(meta))

    @v_args(meta=True)
    def const_decl(self, meta: Any, c: list[Any]) -> ast.Const:
        return ast.Const(str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def set_decl(self, meta: Any, c: list[Any]) -> ast.SetDecl:
        return ast.SetDecl(str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def key_decl(self, meta: Any, c: list[Any]) -> ast.KeyDecl:
        return ast.KeyDecl(str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def rule_decl(self, meta: Any, c: list[Any]) -> ast.RuleDecl:
        return ast.RuleDecl(str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def host_decl(self, meta: Any, c: list[Any]) -> ast.HostDecl:
        return ast.HostDecl(str(c[0]), tuple(c[1:]), pos=self._pos(meta))

    @v_args(meta=True)
    def enclave_decl(self, meta: Any, c: list[Any]) -> ast.EnclaveDecl:
        return ast.EnclaveDecl(str(c[0]), tuple(c[1:]), pos=self._pos(meta))

    @v_args(meta=True)
    def enroll_decl(self, meta: Any, c: list[Any]) -> ast.EnrollDecl:
        return ast.EnrollDecl(str(c[0]), self._str(c[1]), tuple(c[2:]), pos=self._pos(meta))

    # host statements
    @v_args(meta=True)
    def host_allow(self, meta: Any, c: list[Any]) -> ast.Allow:
        return ast.Allow(self._str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def host_allow_any(self, meta: Any, c: list[Any]) -> ast.AllowAny:
        return ast.AllowAny(c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def host_include_sha256sum(self, meta: Any, c: list[Any]) -> ast.IncludeSha256sum:
        return ast.IncludeSha256sum(self._str(c[0]), pos=self._pos(meta))

    @v_args(meta=True)
    def host_include_keylime(self, meta: Any, c: list[Any]) -> ast.IncludeKeylime:
        key = self._str(c[1]) if len(c) > 1 and c[1] is not None else None
        return ast.IncludeKeylime(self._str(c[0]), key, pos=self._pos(meta))

    @v_args(meta=True)
    def host_exclude(self, meta: Any, c: list[Any]) -> ast.Exclude:
        return ast.Exclude(self._str(c[0]), False, pos=self._pos(meta))

    @v_args(meta=True)
    def host_exclude_regex(self, meta: Any, c: list[Any]) -> ast.Exclude:
        return ast.Exclude(self._str(c[0]), True, pos=self._pos(meta))

    @v_args(meta=True)
    def host_require_measured(self, meta: Any, c: list[Any]) -> ast.RequireMeasured:
        return ast.RequireMeasured(self._str(c[0]), pos=self._pos(meta))

    @v_args(meta=True)
    def host_require_signature(self, meta: Any, c: list[Any]) -> ast.RequireSignature:
        return ast.RequireSignature(self._str(c[0]), ast.Ref(str(c[1]), pos=self._tpos(c[1])), pos=self._pos(meta))

    @v_args(meta=True)
    def host_templates(self, meta: Any, c: list[Any]) -> ast.EntryFieldIn:
        return ast.EntryFieldIn("template", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def host_algorithms(self, meta: Any, c: list[Any]) -> ast.EntryFieldIn:
        return ast.EntryFieldIn("hash_algorithm", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def host_boot_aggregate(self, meta: Any, c: list[Any]) -> ast.EntryFieldIn:
        return ast.EntryFieldIn("boot_aggregate", c[0], pos=self._pos(meta))

    def _setting(self, meta: Any, c: list[Any]) -> ast.Setting:
        return ast.Setting(str(c[0]), c[1], pos=self._pos(meta))

    host_setting = v_args(meta=True)(_setting)
    enclave_setting = v_args(meta=True)(_setting)
    enroll_setting = v_args(meta=True)(_setting)

    @v_args(meta=True)
    def enroll_host(self, meta: Any, c: list[Any]) -> ast.Setting:
        return ast.Setting("host", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def enroll_enclave(self, meta: Any, c: list[Any]) -> ast.Setting:
        return ast.Setting("enclave", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def enroll_grant(self, meta: Any, c: list[Any]) -> ast.Grant:
        return ast.Grant(str(c[0]), self._tpos(c[0]), self._str(c[1]), pos=self._pos(meta))

    # enclave statements
    @v_args(meta=True)
    def enclave_rule(self, meta: Any, c: list[Any]) -> ast.EnclaveRule:
        return ast.EnclaveRule(str(c[0]), c[1], pos=self._pos(meta))

    @v_args(meta=True)
    def enclave_deny_advisories(self, meta: Any, c: list[Any]) -> ast.Advisories:
        return ast.Advisories("deny", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def enclave_tolerate_advisories(self, meta: Any, c: list[Any]) -> ast.Advisories:
        return ast.Advisories("tolerate", c[0], pos=self._pos(meta))

    @v_args(meta=True)
    def certificate_block(self, meta: Any, c: list[Any]) -> ast.CertificateBlock:
        return ast.CertificateBlock(tuple(c), pos=self._pos(meta))


def scan_comments(text: str) -> tuple[ast.Comment, ...]:
    """Comments (``#`` outside strings) with their positions; strings never span lines."""
    found: list[ast.Comment] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if "#" not in line:
            continue
        in_string = False
        i = 0
        while i < len(line):
            ch = line[i]
            if in_string:
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#":
                found.append(ast.Comment(lineno, i + 1, line[i:].rstrip(), not line[:i].strip()))
                break
            i += 1
    return tuple(found)


def _describe(term: str) -> str:
    if term in _TOKEN_NAMES:
        return _TOKEN_NAMES[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term
    if pattern.type == "str":
        return repr(pattern.value).replace("'", "'")
    return term.lower()


def _syntax_error(e: UnexpectedInput, text: str, file: str) -> PolicyError:
    line, column = e.line, e.column
    hint: str | None = None
    if isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else ""
        if char == '"':
            message = "unterminated string"
            hint = 'strings end on the same line with "'
        else:
            message = f"unexpected character {char!r}"
    elif isinstance(e, UnexpectedEOF):
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
        message = "unexpected end of file"
        expected = sorted({_describe(t) for t in e.expected})
        if expected:
            message += "; expected " + ", ".join(expected)
    else:
        assert isinstance(e, UnexpectedToken)
        tok = e.token
        if tok.type == "$END":
            lines = text.split("\n")
            line, column = len(lines), len(lines[-1]) + 1
            found = "end of file"
        else:
            found = repr(str(tok))
        dangling = _dangling_operator(text, tok) if tok.type in ("COLON", "EQUAL") else None
        if dangling is not None:
            # "svn: isv_svn >=" followed by the next statement: the next statement's name was taken
            # as the missing operand; the mistake is the end of the previous line.
            line, column, op = dangling
            return PolicyError(
                f"nothing after {op!r}: the expression is incomplete", location=Location(file, line, column)
            )
        expected = sorted({_describe(t) for t in e.expected if not t.startswith("__")})
        message = f"unexpected {found}"
        if expected:
            message += "; expected " + (", ".join(expected[:8]) + (", ..." if len(expected) > 8 else ""))
        # A misspelt keyword is usually the offending NAME or the NAME just before it.
        candidates = [str(tok)] if tok.type == "NAME" else []
        prev = _previous_word(text, tok.start_pos) if tok.start_pos is not None else None
        if prev:
            candidates.append(prev)
        import difflib  # only for a syntax error

        for word in candidates:
            close = difflib.get_close_matches(word, KEYWORDS, n=1, cutoff=0.75)
            if close and close[0] != word:
                hint = f"did you mean {close[0]!r}?"
                break
    return PolicyError(message, location=Location(file, line, column), hint=hint)


_OPERATOR_AT_END = re.compile(r"(==|!=|<=|>=|<|>|&|=|:|\b(?:and|or|not|in))\s*\Z")


def _dangling_operator(text: str, tok: Token) -> tuple[int, int, str] | None:
    """(line, column, operator) when the line before ``tok``'s line ends in an operator and ``tok``'s
    line starts with one name, i.e. a statement head was swallowed as the missing operand."""
    if tok.start_pos is None:
        return None
    line_start = text.rfind("\n", 0, tok.start_pos) + 1
    if not re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*", text[line_start : tok.start_pos]):
        return None
    before = text[:line_start].rstrip()
    prev_start = before.rfind("\n") + 1
    code = _STRING_OR_COMMENT.sub(
        lambda m: " " * len(m.group()) if m.group().startswith("#") else m.group(), before[prev_start:]
    )
    m = _OPERATOR_AT_END.search(code.rstrip())
    if m is None:
        return None
    return before.count("\n", 0, prev_start) + 1, m.start() + 1, m.group(1)


def _previous_word(text: str, end: int) -> str | None:
    i = end - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    j = i
    while j >= 0 and (text[j].isalnum() or text[j] == "_"):
        j -= 1
    word = text[j + 1 : i + 1]
    return word or None


class PolicyErrors(PolicyError):
    """Several policy errors at once; ``str()`` gives one ``FILE:LINE:COL: message`` line per error."""

    def __init__(self, errors: Sequence[PolicyError]):
        first = errors[0]
        super().__init__(first.message, location=first.location, hint=first.hint if len(errors) == 1 else None)
        self.errors: tuple[PolicyError, ...] = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(PolicyError.__str__(e) for e in self.errors)


@functools.cache
def _token_lexer() -> Lark:
    # A context-free lexer over the same terminals, to learn the type of a resynchronisation token.
    return Lark(_grammar(), parser="lalr", lexer="basic")


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*')


def _brace_balance(text: str) -> int:
    code = _STRING_OR_COMMENT.sub("", text)
    return code.count("{") - code.count("}")


class _Recovery:
    """Panic-mode error recovery for the LALR parser, so that one run reports every syntax error.

    After an error the parser resumes at the first token of a later line (statements and
    declarations start on their own line; strings never span lines): it pops its stack down to a
    state that is between statements (accepts that token, and no string, which only an unfinished
    statement would) and re-lexes from there. A token no such state accepts is skipped with its
    line. The first token after a resynchronisation is not reported again: an error there is the
    echo of the previous one, not a new mistake.
    """

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.errors: list[PolicyError] = []
        self.resumed_at = -1  # offset where parsing resumed after the last error
        self.skipped: list[str] = []  # the source text each resumption dropped

    def _echo(self, offset: int) -> bool:
        between = self.text[self.resumed_at : offset] if 0 <= self.resumed_at <= offset else None
        return between is not None and all(not ln.strip() or ln.lstrip().startswith("#") for ln in between.split("\n"))

    def _line_starts(self, after: int) -> Iterator[tuple[int, int, str]]:
        """(offset, line, token type) of the first token of each line after offset ``after``."""
        nl = self.text.find("\n", after)
        while nl >= 0:
            start = nl + 1
            nl = self.text.find("\n", start)
            line = self.text[start : nl if nl >= 0 else len(self.text)]
            body = line.lstrip()
            if not body or body.startswith("#"):
                continue
            offset = start + len(line) - len(body)
            try:
                tok = next(iter(_token_lexer().lex(body)), None)
            except UnexpectedInput:
                continue
            if tok is not None:
                yield offset, self.text.count("\n", 0, offset) + 1, tok.type
        yield len(self.text), 0, "$END"

    def __call__(self, e: UnexpectedInput) -> bool:
        if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
            if not self._echo(len(self.text)):
                self.errors.append(_syntax_error(e, self.text, self.file))
            return False
        assert isinstance(e, UnexpectedToken | UnexpectedCharacters)
        offset = e.pos_in_stream if isinstance(e, UnexpectedCharacters) else e.token.start_pos
        offset = offset if offset is not None else len(self.text)
        if not self._echo(offset):
            self.errors.append(_syntax_error(e, self.text, self.file))
        ip = e.interactive_parser
        state = ip.parser_state
        tables = state.parse_conf.states
        # The offending token itself is a resynchronisation point when it starts its line.
        line_start = self.text.rfind("\n", 0, offset) + 1
        candidates: Iterable[tuple[int, int, str]] = self._line_starts(offset)
        if isinstance(e, UnexpectedToken) and not self.text[line_start:offset].strip():
            here = (offset, self.text.count("\n", 0, offset) + 1, e.token.type)
            candidates = itertools.chain((here,), candidates)
        skipped_depth, skipped_from = 0, offset
        for at, line, kind in candidates:
            # A block opened in the skipped text is skipped whole: its statements are no declarations.
            skipped_depth += _brace_balance(self.text[skipped_from:at])
            skipped_from = at
            if skipped_depth > 0:
                continue
            depth, closes, unclosed = len(state.state_stack), -skipped_depth, None
            while depth > 1:
                actions = tables[state.state_stack[depth - 1]]
                if kind in actions and "STRING" not in actions:
                    break
                value = state.value_stack[depth - 2]
                if isinstance(value, Token) and value.type == "RBRACE":
                    depth = 0  # never reopen a block the text closed
                    break
                if isinstance(value, Token) and value.type == "LBRACE":
                    if closes == 0:  # never close a block the text left open
                        unclosed, depth = value, 0
                        break
                    closes -= 1
                depth -= 1
            else:
                actions = tables[state.state_stack[0]]
                depth = 1 if kind in actions else 0
            if depth == 0 and kind == "$END" and unclosed is not None:
                lines = self.text.split("\n")
                self.errors.append(
                    PolicyError(
                        f"unexpected end of file; the block opened at line {unclosed.line} is not closed",
                        location=Location(self.file, len(lines), len(lines[-1]) + 1),
                        hint="add the missing '}'",
                    )
                )
                return False
            if depth == 0:
                continue  # nothing can follow here: skip this line too
            del state.state_stack[depth:]
            del state.value_stack[depth - 1 :]
            lexer_state = ip.lexer_thread.state
            assert lexer_state is not None
            counter = lexer_state.line_ctr
            counter.char_pos = at
            counter.line_start_pos = self.text.rfind("\n", 0, at) + 1
            counter.line = line or self.text.count("\n", 0, at) + 1
            counter.column = at - counter.line_start_pos + 1
            self.skipped.append(self.text[line_start:at])
            self.resumed_at = at
            return True
        return False


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a recovering parse found: the declarations it could read (None when the file could not be
    read to its end), every error in source order, and the text each recovery skipped."""

    module: ast.Module | None
    errors: tuple[PolicyError, ...]
    skipped: tuple[str, ...]


def _order(e: PolicyError) -> tuple[int, int]:
    loc = e.location
    return ((loc.line or 0) if loc else 0, (loc.column or 0) if loc else 0)


def parse_recovering(text: str, file: str = "<policy>") -> ParseResult:
    """Parse one policy file, resuming after syntax errors; the module holds every declaration that
    parsed, so that the checker can still judge them (as ``opa check`` reports type errors beside
    parse errors)."""
    recovery = _Recovery(text, file)
    try:
        tree = _lark().parse(text, on_error=recovery)
    except UnexpectedInput as e:
        if not recovery.errors:
            recovery.errors.append(_syntax_error(e, text, file))
        tree = None
    module = None
    errors = list(recovery.errors)
    if tree is not None:
        build = _Build(file)
        try:
            decls = build.transform(tree).children
        except VisitError as e:
            if not errors:  # a bug in the tree builder, not in the user's text
                raise e.orig_exc from None
        else:  # after a recovery the tree holds what parsed; a builder failure there means no tree
            module = ast.Module(file, tuple(decls), scan_comments(text))
            errors.extend(build.errors)
    return ParseResult(module, tuple(sorted(errors, key=_order)), tuple(recovery.skipped))


def parse(text: str, file: str = "<policy>") -> ast.Module:
    """Parse one policy file. Raises :class:`PolicyError` (located) on a syntax error; with several
    independent errors, a :class:`PolicyErrors` holding each of them in source order."""
    result = parse_recovering(text, file)
    if result.errors:
        if len(result.errors) == 1:
            raise result.errors[0]
        raise PolicyErrors(result.errors)
    assert result.module is not None
    return result.module
