"""The pure core (``floodlight_trust/evidence/`` and ``policy_lang/``) takes bytes, trust roots and
the time as arguments: no module of it opens a file, lists a directory, reads the environment or
the clock, or touches the network. The shell (``floodlight_trust/clients/``, ``floodlight_trust/http/``,
the CLI, the VM, the agent) does that and calls the core.

Two checks: every core module imports, in a fresh interpreter, without pulling in a shell module or
a network library; and an AST scan of every core module (imports inside functions included) finds
no I/O import and no I/O call. Reading the package's own data (``importlib.resources``: the grammar,
the pinned Intel roots, a JSON schema) is not input and is allowed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = (ROOT / "floodlight_trust" / "evidence", ROOT / "policy_lang")

# Named, documented shell modules inside the core's packages: module path -> why it does I/O.
SHELL: dict[str, str] = {
    "policy_lang/testing.py": "runs policy test files (`ftrust policy test`): reads the test file, its fixtures "
    "and evidence files",
    "policy_lang/pytest_plugin.py": "the pytest plugin (entry point `policy_lang.pytest_plugin`): collects "
    "policy test files through policy_lang/testing.py",
}

# Modules whose import means I/O: the network, processes, databases, the project's shell packages.
IO_MODULES = (
    "socket",
    "ssl",
    "urllib3",
    "requests",
    "aiohttp",
    "httptools",
    "httpx",
    "http.client",
    "urllib.request",
    "subprocess",
    "sqlite3",
    "floodlight_trust.clients",
    "floodlight_trust.http",
    "floodlight_trust.fileio",
    "floodlight_trust.storage",
    "floodlight_trust.manager",
    "floodlight_trust.statestore",
)
# In a fresh interpreter the standard library itself may import socket or ssl; what the core must
# never pull in, even indirectly, is a network client or the project's shell.
NEVER_LOADED = tuple(m for m in IO_MODULES if m not in ("socket", "ssl", "subprocess"))

IO_BUILTINS = {"open", "input"}
IO_FUNCTIONS = {
    ("os", "open"),
    ("os", "listdir"),
    ("os", "scandir"),
    ("os", "walk"),
    ("os", "stat"),
    ("os", "getenv"),
    ("os", "getcwd"),
    ("io", "open"),
    ("clock", "now"),
    ("Path", "cwd"),
    ("Path", "home"),
}
IO_METHODS = {
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
    "iterdir",
    "glob",
    "rglob",
    "is_file",
    "is_dir",
    "exists",
    "stat",
    "resolve",
    "mkdir",
    "unlink",
}
IO_ATTRIBUTES = {("os", "environ")}


def core_modules() -> list[Path]:
    return sorted(p for base in CORE for p in base.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix().removeprefix("floodlight_trust/")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_io_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in IO_MODULES)


def _root(node: ast.expr) -> ast.expr:
    """The start of a call chain: ``resources`` in ``resources.files("x").joinpath("y").read_bytes()``."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return node


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def io_uses(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{filename}:{line}: import {a.name}" for a in node.names if _is_io_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            if _is_io_module(node.module) or any(_is_io_module(n) for n in names):
                found.append(f"{filename}:{line}: from {node.module} import ...")
            if node.module == "floodlight_trust.clock" and any(a.name == "now" for a in node.names):
                found.append(f"{filename}:{line}: from floodlight_trust.clock import now")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in IO_BUILTINS:
                found.append(f"{filename}:{line}: {func.id}()")
            elif isinstance(func, ast.Attribute):
                base = _name(func.value)
                if (base, func.attr) in IO_FUNCTIONS:
                    found.append(f"{filename}:{line}: {base}.{func.attr}()")
                elif func.attr in IO_METHODS and _name(_root(func)) != "resources":
                    found.append(f"{filename}:{line}: .{func.attr}()")
        elif isinstance(node, ast.Attribute) and (_name(node.value), node.attr) in IO_ATTRIBUTES:
            found.append(f"{filename}:{line}: {_name(node.value)}.{node.attr}")
    return found


def test_core_modules_do_no_io() -> None:
    found = [
        use
        for path in core_modules()
        if rel(path) not in SHELL
        for use in io_uses(path.read_text(encoding="utf-8"), rel(path))
    ]
    assert found == []


def test_core_modules_import_no_shell() -> None:
    names = [module_name(p) for p in core_modules() if rel(p) not in SHELL]
    program = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"never = {NEVER_LOADED!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if any(m == n or m.startswith(n + '.') for n in never))))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert len(names) > 20  # every module of evidence/ and policy_lang/ was imported


def test_the_scan_sees_io() -> None:
    """The scan is not blind: each kind of I/O it looks for, written in a core module, is found."""
    source = (
        "import urllib3\n"
        "from floodlight_trust.clients import httpclient\n"
        "from floodlight_trust.clock import now\n"
        "from pathlib import Path\n"
        "def f(p: Path) -> None:\n"
        "    from floodlight_trust.fileio import read_bytes\n"
        "    open(p)\n"
        "    p.read_bytes()\n"
        "    Path(p).iterdir()\n"
        "    os.environ['X']\n"
        "    clock.now()\n"
        "    resources.files('floodlight_trust').joinpath('data/x.der').read_bytes()\n"
    )
    found = io_uses(source, "core.py")
    assert sorted(int(f.split(":")[1]) for f in found) == [1, 2, 3, 6, 7, 8, 9, 10, 11], found


def test_no_stale_shell_exception() -> None:
    """Each named shell module exists, so the list shrinks when a module leaves (or turns pure)."""
    present = {rel(p) for p in core_modules()}
    assert sorted(set(SHELL) - present) == []
