"""The shell's policy reader: policy files from disk, with the files they import and include
(reference lists, keys). The language (``policy_lang``) takes text and reads nothing; the CLI, the
VM, policy tests and the enclave manifest check load policies through here.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from floodlight_trust.errors import ConfigError, Location
from floodlight_trust.fileio import read_bytes
from policy_lang.check import Root
from policy_lang.compile import Policy, compile_policy_roots, decode_policy

if TYPE_CHECKING:
    from floodlight_trust.config import Config


class PolicyFiles:
    """:class:`policy_lang.check.PolicySources` on the file system: the one reader of a policy's
    imports, reference lists and keys (a located InputError when one is unreadable)."""

    def read(self, path: PurePath) -> bytes:
        return read_bytes(Path(path), what="file")

    def name(self, path: PurePath) -> str:
        """A stable, readable name for a file: relative to the working directory when below it."""
        try:
            resolved = Path(path).resolve()
        except (ValueError, OSError):  # a NUL in an import/include path: shown as written; reading it fails, located
            return str(path).replace("\0", "\\0")
        try:
            return str(resolved.relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(resolved)


FILES = PolicyFiles()


def load_policy(path: str | Path) -> Policy:
    """Load a policy file with its imports and reference lists; check and compile it."""
    return load_policy_files([Path(path)])


def load_policy_files(paths: list[Path]) -> Policy:
    """Load several policy files as one policy (a policy directory): their declarations share one
    namespace, as if one file imported the others; a file they both import is loaded once."""
    roots: list[Root] = []
    for target in paths:
        data = read_bytes(target, what="policy file")
        roots.append((decode_policy(data, str(target)), FILES.name(target), target.parent, data))
    return compile_policy_roots(roots, FILES)


def check_policy_path(config: Config) -> Path:
    """The VM's policy file (``vm.policy``): configured and present, or a located ConfigError."""
    p = config.path("vm", "policy")
    if p is None:
        raise ConfigError("no policy configured", location=Location(config.source), hint="set vm.policy")
    if not p.exists():
        raise ConfigError("policy file not found", location=Location(str(p)))
    return p


def load_policy_file(path: Path | None) -> Policy:
    """The VM's policy (at start and on every reload), or ConfigError when none is configured."""
    if path is None:
        raise ConfigError("no policy configured", hint="set vm.policy to the site policy file")
    return load_policy(path)
