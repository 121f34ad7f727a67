"""Syntax: positions on nodes, located syntax errors with hints, robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import PolicyError
from policy_lang import ast
from policy_lang.parser import PolicyErrors, parse


def test_every_node_has_its_position() -> None:
    m = parse('set s = {"a"}\n\nenclave e {\n    svn: isv_svn >= 2\n}\n', "p.policy")
    enclave = m.decls[1]
    assert isinstance(enclave, ast.EnclaveDecl)
    rule = enclave.body[0]
    assert isinstance(rule, ast.EnclaveRule)
    assert (rule.pos.file, rule.pos.line, rule.pos.column) == ("p.policy", 4, 5)
    assert isinstance(rule.expr, ast.Compare)
    assert (rule.expr.right.pos.line, rule.expr.right.pos.column) == (4, 21)


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        ("hots h {}\n", "p:1:1", "unexpected 'hots'", "did you mean 'host'?"),
        (
            'host h {\n    alow "/x" digest in {}\n}\n',
            "p:2:10",
            "unexpected '\"/x\"'; expected '='",
            "did you mean 'allow'?",
        ),
        ('const c = "abc\n', "p:1:11", "unterminated string", 'strings end on the same line with "'),
        ("enclave e {\n    a: isv_svn >=\n}\n", "p:3:1", "unexpected '}'", None),
        ("host h {\n", "p:2:1", "unexpected end of file", None),
        ("const c = 5 $\n", "p:1:13", "unexpected character '$'", None),
    ],
)
def test_syntax_errors_are_located(text: str, where: str, message: str, hint: str | None) -> None:
    with pytest.raises(PolicyError) as info:
        parse(text, "p")
    assert str(info.value).startswith(f"{where}: {message}")
    assert info.value.hint == hint


def test_comments_are_kept_with_their_position() -> None:
    m = parse('# a\nconst c = "#not" # b\n', "p")
    assert [(c.line, c.text, c.own_line) for c in m.comments] == [(1, "# a", True), (2, "# b", False)]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('hostenclave{}=:"#\n allow digest in 0x12 30d and or not ()[],&<>'))))
def test_arbitrary_text_raises_only_policy_errors(text: str) -> None:
    try:
        parse(text, "fuzz")
    except PolicyError as e:
        assert str(e).startswith("fuzz:")


THREE_TYPOS = """\
import "common.policy"

host container_host {
    template in {"ima-ng", "ima-sig"}
    exclde "/tmp/**"
    require measured "/usr/bin/containerd"
}

enclave firewall_vnf {
    identity: mrenclave in firewall_builds
    svn: isv_svn >=
    evidence: evidence_type == DCAP
}

enrol firewall for "vnf-firewall-*" {
    host = container_host
    enclave = firewall_vnf
}

const ok = 5
"""


def test_three_independent_typos_give_exactly_three_errors() -> None:
    with pytest.raises(PolicyErrors) as info:
        parse(THREE_TYPOS, "p")
    errors = info.value.errors
    assert [(str(e.location), e.message.split(";")[0], e.hint) for e in errors] == [
        ("p:5:12", "unexpected '\"/tmp/**\"'", "did you mean 'exclude'?"),
        ("p:11:18", "nothing after '>=': the expression is incomplete", None),
        ("p:15:1", "unexpected 'enrol'", "did you mean 'enroll'?"),
    ]


def test_errors_after_an_unterminated_string_and_a_stray_character_are_still_found() -> None:
    text = 'const a = "abc\nconst b = 5\nset c = {"x", @}\nenclave e {\n    svn: isv_svn >= 1\n    debg = true\n}\n'
    with pytest.raises(PolicyErrors) as info:
        parse(text, "p")
    assert [(str(e.location), e.message) for e in info.value.errors] == [
        ("p:1:11", "unterminated string"),
        ("p:3:15", "unexpected character '@'"),
    ]


def test_a_file_whose_block_is_not_closed_reports_the_end_once() -> None:
    text = 'host h {\n    exclude "/tmp/**"\n    alow "/x" digest in {}\n'
    with pytest.raises(PolicyErrors) as info:
        parse(text, "p")
    assert [str(e.location) for e in info.value.errors] == ["p:3:10", "p:4:1"]
    assert info.value.errors[1].message == "unexpected end of file; the block opened at line 1 is not closed"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(THREE_TYPOS.splitlines()), max_size=30))
def test_recovery_on_shuffled_lines_reports_located_errors_in_order(lines: list[str]) -> None:
    try:
        parse("\n".join(lines) + "\n", "fuzz")
    except PolicyError as e:
        errors = getattr(e, "errors", (e,))
        keys = [(x.location.line, x.location.column) for x in errors]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
