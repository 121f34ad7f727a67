"""The formatter: canonical, idempotent, comments kept, meaning unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_lang.fmt import format_text
from policy_lang.parser import parse

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "policies"

MESSY = """# header

const   X=\"a\"   # trailing
set s={\"a\",
  # about b
  \"b\", # tb
}
rule r = ((tcb_status == UpToDate) or debug) and not (isv_svn < 2)
host h { allow \"/x\" digest in {\"ab\"} # on allow
exclude regex \"^/proc/\\\\d+\"

template in {\"ima-ng\"} }
enclave e { a: isv_svn >= 1
}
"""

CANONICAL = """# header

const X = "a"  # trailing
set s = {
    "a",
    # about b
    "b",  # tb
}
rule r = (tcb_status == UpToDate or debug) and not isv_svn < 2

host h {
    allow "/x" digest in {"ab"}  # on allow
    exclude regex "^/proc/\\\\d+"

    template in {"ima-ng"}
}

enclave e {
    a: isv_svn >= 1
}
"""


def test_canonical_form() -> None:
    assert format_text(MESSY) == CANONICAL


def test_idempotent_and_same_meaning() -> None:
    once = format_text(MESSY)
    assert format_text(once) == once
    strip = lambda m: [type(d).__name__ for d in m.decls]  # noqa: E731
    assert strip(parse(once)) == strip(parse(MESSY))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.policy")))
def test_shipped_policies_are_formatted(name: str) -> None:
    text = (CONFIGS / name).read_text()
    assert format_text(text) == text


def test_long_sets_break_one_item_per_line() -> None:
    items = ", ".join(f'"{i:064x}"' for i in range(2))
    out = format_text(f"set s = {{{items}}}\n")
    assert out == "set s = {\n" + "".join(f'    "{i:064x}",\n' for i in range(2)) + "}\n"
