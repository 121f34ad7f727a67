"""``ftrust enclave check-manifest``: would this Gramine manifest run, and does the policy admit it?

Gramine is not installable everywhere, so the manifest is checked against what the runtime needs
and what the policy expects, each check a reason (codes ``manifest.*``), all of them reported:

- ``manifest.attestation``: ``sgx.remote_attestation`` is "dcap" or "epid" (and the policy's
  evidence type when one is named);
- ``manifest.debug``: ``sgx.debug`` is false (a debug enclave's memory is readable by the host);
- ``manifest.policy``: ``sgx.isvprodid`` / ``sgx.isvsvn`` / debug satisfy the enclave policy's rules
  on those claims (``product: isv_prod_id == 0``, ``svn: isv_svn >= 1``...);
- ``manifest.trusted_files``: every trusted file exists on this machine (Gramine's own files are a
  note when Gramine is not installed here);
- ``manifest.mounts``: no two mounts at one path, none hidden by a later mount above it;
- ``manifest.libraries``: every shared library the interpreter and its extension modules load
  (computed with ``ldd``, not by hand) is a trusted file; glibc's come from Gramine's runtime;
- VNF enclaves (argv runs ``enclave serve``): ``manifest.sealing`` (an encrypted mount keyed
  ``_sgx_mrenclave`` or ``_sgx_mrsigner`` for the enclave's sealed key and credentials, never an
  allowed file), ``manifest.pin`` (the pinned ``vm-ca.pem`` is a trusted file, hence in
  MRENCLAVE), ``manifest.tmpfs`` (``/tmp`` in enclave memory, where the TLS client loads its key).

Templates (``*.template``) are rendered with Jinja2 as ``gramine-manifest`` renders them; variables
not given with ``-D`` are computed from the interpreter (``entrypoint``, ``python_prefix``,
``stdlib``, ``venv``, ``site_packages``, ``trusted_libs``; ``ftrust enclave manifest-vars`` prints
them for gramine-manifest).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floodlight_trust.errors import InputError, Location
from floodlight_trust.reasons import Reason, ReasonLevel

GRAMINE_LIBDIR = "/usr/lib/x86_64-linux-gnu/gramine"
GRAMINE_LIBOS = f"{GRAMINE_LIBDIR}/libsysdb.so"
SEALING_KEYS = ("_sgx_mrenclave", "_sgx_mrsigner")
# Libraries Gramine's patched glibc provides from its runtime directory (not the host's copies).
_GLIBC = re.compile(
    r"^(ld-linux[-\w.]*\.so[.\d]*|lib(c|m|mvec|dl|pthread|rt|util|resolv|anl|nsl|BrokenLocale)\.so[.\d]*"
    r"|libnss_\w+\.so[.\d]*|linux-vdso\.so[.\d]*)$"
)
_LAYOUT_SCRIPT = """
import json, sys, sysconfig
paths = sysconfig.get_paths()
print(json.dumps({
    "executable": sys.executable,
    "base_prefix": sys.base_prefix,
    "prefix": sys.prefix,
    "stdlib": paths["stdlib"],
    "dynload": sysconfig.get_config_var("DESTSHARED") or "",
    "site": sorted({paths["purelib"], paths["platlib"]}),
    "libpython": (sysconfig.get_config_var("LIBDIR") or "") + "/" + (sysconfig.get_config_var("LDLIBRARY") or ""),
}))
"""


@dataclass(frozen=True, slots=True)
class InterpreterLayout:
    """Where an interpreter and everything it loads live (realpaths)."""

    executable: str
    base_prefix: str
    prefix: str  # the venv (or base_prefix)
    stdlib: str
    dynload: str
    site: tuple[str, ...]
    libraries: tuple[str, ...]  # shared libraries outside glibc, as the loader finds them


def _ldd(paths: list[str]) -> list[str]:
    """Every library ``ldd`` resolves for ``paths`` (one ldd per 256 files: it prints a section each)."""
    libs = []
    for i in range(0, len(paths), 256):
        try:
            out = subprocess.run(
                ["ldd", *paths[i : i + 256]], capture_output=True, text=True, timeout=120, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            m = re.match(r"\s+(\S+)\s+=>\s+(/\S+)\s+\(", line) or re.match(r"\s+(/\S+)\s+\(", line)
            if m:
                libs.append(m.group(m.lastindex or 1))
    return libs


def interpreter_layout(python: str = sys.executable) -> InterpreterLayout:
    """Ask ``python`` where it lives and ``ldd`` what it and every extension module it could import
    (its lib-dynload and site-packages) load."""
    try:
        r = subprocess.run([python, "-c", _LAYOUT_SCRIPT], capture_output=True, text=True, timeout=60, check=False)
        doc = json.loads(r.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        raise InputError(f"cannot run the interpreter {python!r} to find what it loads") from None
    executable = os.path.realpath(doc["executable"])
    objects = [executable]
    for root in [doc["dynload"], *doc["site"]]:
        if root and os.path.isdir(root):
            objects += [str(p) for p in sorted(Path(root).rglob("*.so*")) if p.is_file()]
    libs: set[str] = set()
    for lib in _ldd(objects):
        # The path the dynamic loader opens (what Gramine checks), not its symlink target.
        if not _GLIBC.match(os.path.basename(lib)) and not _GLIBC.match(os.path.basename(os.path.realpath(lib))):
            libs.add(os.path.normpath(lib))
    return InterpreterLayout(
        executable,
        os.path.realpath(doc["base_prefix"]),
        os.path.realpath(doc["prefix"]),
        os.path.realpath(doc["stdlib"]),
        os.path.realpath(doc["dynload"]) if doc["dynload"] else "",
        tuple(os.path.realpath(s) for s in doc["site"]),
        tuple(sorted(libs)),
    )


def template_variables(layout: InterpreterLayout) -> dict[str, str]:
    """The -D variables of the shipped templates, as computed for ``layout``'s interpreter."""
    return {
        "entrypoint": layout.executable,
        "python_prefix": layout.base_prefix,
        "stdlib": layout.stdlib,
        "venv": layout.prefix,
        "site_packages": layout.site[0] if layout.site else layout.stdlib + "/site-packages",
        "trusted_libs": ":".join(layout.libraries),
        "arch_libdir": "/lib/x86_64-linux-gnu",
        "agent_config": "/etc/ftrust/agent.toml",  # ftrust-agent template
        "image": "/opt/ftrust-vnf",  # ftrust-vnf template: the enclave image
        "vnf_config": "/etc/ftrust/vnf.toml",  # ftrust-vnf template: where the VNF enclave runs
    }


class _Gramine:
    """The ``gramine`` object gramine-manifest gives templates (its install paths)."""

    libos = GRAMINE_LIBOS

    @staticmethod
    def runtimedir(libc: str = "glibc") -> str:
        return f"{GRAMINE_LIBDIR}/runtime/{libc}"


def render_template(text: str, variables: Mapping[str, str], *, source: str = "template") -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701 (TOML, not HTML)
    try:
        return env.from_string(text).render(gramine=_Gramine, **variables)
    except jinja2.TemplateError as e:
        line = getattr(e, "lineno", None)
        raise InputError(f"cannot render the template: {e.message}", location=Location(source, line)) from None


def load_manifest(path: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """A manifest file, rendered first when it is a template (``*.template``)."""
    from floodlight_trust.fileio import read_bytes

    try:
        text = read_bytes(path, what="manifest").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the manifest is not UTF-8 text", location=Location(str(path))) from None
    if path.name.endswith(".template"):
        text = render_template(text, variables, source=str(path))
    return parse_manifest(text, source=str(path))


def parse_manifest(text: str, *, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", str(e))
        msg, line, col = (m.group(1), int(m.group(2)), int(m.group(3))) if m else (str(e), None, None)
        raise InputError(f"invalid TOML: {msg}", location=Location(source, line, col)) from None


@dataclass(frozen=True, slots=True)
class PolicyExpectation:
    """What an enclave policy says about the fields a manifest sets."""

    policy: str  # file, for messages
    enclave: str  # enclave policy name
    evaluate: Callable[[int, int, bool], list[str]]  # (isvprodid, isvsvn, debug) -> failures
    evidence_type: str | None  # "DCAP" / "IAS" when the policy fixes it


_MANIFEST_CLAIMS = {"isv_prod_id", "isv_svn", "debug", "evidence_type"}


def policy_expectation(policy_path: Path, enclave: str) -> PolicyExpectation:
    """Read ``enclave``'s rules on isv_prod_id, isv_svn and debug from a policy file."""
    from floodlight_trust.policy_files import load_policy
    from policy_lang.evaluate import failures

    policy = load_policy(policy_path)
    compiled = policy.enclaves.get(enclave)
    if compiled is None:
        raise InputError(
            f"no enclave policy {enclave!r}",
            location=Location(str(policy_path)),
            hint="known: " + ", ".join(policy.enclave_policies),
        )

    def claims_of(t: Any) -> set[str]:
        names = {t.name} if t.kind == "claim" else set()
        for a in t.args:
            names |= claims_of(a)
        return names

    rules = [r for r in compiled.rules if r.kind == "expr" and r.expr is not None]
    relevant = [r for r in rules if claims_of(r.expr) and claims_of(r.expr) <= _MANIFEST_CLAIMS - {"evidence_type"}]
    evidence: str | None = None
    for r in rules:
        expr = r.expr
        assert expr is not None
        if claims_of(expr) == {"evidence_type"} and expr.kind == "cmp" and expr.name == "==":
            evidence = str(expr.args[1].value)

    def evaluate(prod_id: int, svn: int, debug: bool) -> list[str]:
        claims = _synthetic_claims(prod_id, svn, debug)
        out = []
        for r in relevant:
            assert r.expr is not None
            out += [f"rule {r.name}: {m}" for m, _ in failures(r.expr, claims)]
        if debug and compiled.allow_debug is None:
            out.append("the policy does not allow debug enclaves (no allow_debug = true)")
        return out

    return PolicyExpectation(str(policy_path), enclave, evaluate, evidence)


def _synthetic_claims(prod_id: int, svn: int, debug: bool) -> Any:
    from floodlight_trust.claims import EnclaveClaims, EvidenceType, PlatformIdentity, TcbStatus

    return EnclaveClaims(
        evidence_type=EvidenceType.DCAP,
        mrenclave="0" * 64,
        mrsigner="0" * 64,
        isv_prod_id=prod_id,
        isv_svn=svn,
        debug=debug,
        mode64bit=True,
        attributes="0" * 32,
        misc_select=0,
        config_svn=0,
        config_id="0" * 128,
        isv_ext_prod_id="0" * 32,
        isv_family_id="0" * 32,
        report_data="0" * 128,
        tcb_status=TcbStatus.UP_TO_DATE,
        advisory_ids=(),
        qe_identity_status=None,
        collateral_issued_at=datetime(2000, 1, 1, tzinfo=UTC),
        platform=PlatformIdentity(),
    )


def _uri_path(entry: Any) -> str | None:
    uri = entry.get("uri") if isinstance(entry, dict) else entry
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    return uri[len("file:") :]


def _covered(path: str, trusted: Iterable[str]) -> bool:
    for t in trusted:
        if t.endswith("/") and path.startswith(t):
            return True
        if os.path.realpath(t.rstrip("/")) == path or t == path:
            return True
        if t.endswith("/") and path.startswith(os.path.realpath(t.rstrip("/")) + "/"):
            return True
    return False


def check_manifest(
    doc: Mapping[str, Any],
    *,
    layout: InterpreterLayout,
    exists: Callable[[str], bool],
    gramine_installed: bool,
    expectation: PolicyExpectation | None = None,
) -> list[Reason]:
    """Every reason this manifest would not run, or would not be admitted (notes: not checkable here)."""
    reasons: list[Reason] = []
    sgx = doc.get("sgx", {}) if isinstance(doc.get("sgx"), dict) else {}
    loader = doc.get("loader", {}) if isinstance(doc.get("loader"), dict) else {}
    fs = doc.get("fs", {}) if isinstance(doc.get("fs"), dict) else {}
    argv = [str(a) for a in loader.get("argv", [])] if isinstance(loader.get("argv"), list) else []
    is_vnf = "enclave" in argv and "serve" in argv

    attestation = sgx.get("remote_attestation")
    if attestation not in ("dcap", "epid"):
        reasons.append(
            Reason("manifest.attestation", f'sgx.remote_attestation is {attestation!r}, expected "dcap" or "epid"')
        )
    elif expectation is not None and expectation.evidence_type is not None:
        want = {"DCAP": "dcap", "IAS": "epid"}.get(expectation.evidence_type)
        if want and attestation != want:
            reasons.append(
                Reason(
                    "manifest.attestation",
                    f"sgx.remote_attestation is {attestation!r}, but enclave policy {expectation.enclave} requires "
                    f"evidence_type == {expectation.evidence_type} ({want!r})",
                )
            )
    debug = sgx.get("debug", False)
    if debug is not False:
        reasons.append(
            Reason("manifest.debug", f"sgx.debug is {debug!r}: a debug enclave's memory is open to the host")
        )
    prod_id, svn = sgx.get("isvprodid", 0), sgx.get("isvsvn", 0)
    if not isinstance(prod_id, int) or not isinstance(svn, int):
        reasons.append(Reason("manifest.policy", "sgx.isvprodid and sgx.isvsvn must be integers"))
    elif expectation is not None:
        for failure in expectation.evaluate(prod_id, svn, debug is True):
            reasons.append(
                Reason(
                    "manifest.policy",
                    f"sgx.isvprodid = {prod_id}, sgx.isvsvn = {svn}, sgx.debug = {str(debug is True).lower()}: "
                    f"enclave policy {expectation.enclave} ({expectation.policy}) refuses it: {failure}",
                )
            )

    entries = sgx.get("trusted_files", [])
    trusted = [p for p in (_uri_path(e) for e in (entries if isinstance(entries, list) else [])) if p]
    for path in trusted:
        if exists(path.rstrip("/") or "/"):
            continue
        if path.startswith(GRAMINE_LIBDIR) and not gramine_installed:
            reasons.append(
                Reason(
                    "manifest.trusted_files", f"{path}: Gramine's own file, not installed here", level=ReasonLevel.NOTE
                )
            )
        else:
            reasons.append(Reason("manifest.trusted_files", f"trusted file {path} does not exist on this machine"))
    for need, what in [(layout.executable, "the interpreter"), (layout.stdlib + "/", "the standard library")]:
        if not _covered(need.rstrip("/"), trusted) and not _covered(need, trusted):
            reasons.append(Reason("manifest.libraries", f"{what} {need} is not a trusted file"))
    for lib in layout.libraries:
        if not _covered(lib, trusted):
            reasons.append(
                Reason(
                    "manifest.libraries",
                    f"{lib} is loaded by the interpreter or an extension module but is not a trusted file",
                )
            )

    mounts = [m for m in fs.get("mounts", []) if isinstance(m, dict)] if isinstance(fs.get("mounts"), list) else []
    paths = [str(m.get("path", "")).rstrip("/") or "/" for m in mounts]
    for i, path in enumerate(paths):
        if path in paths[:i]:
            reasons.append(Reason("manifest.mounts", f"two mounts at {path}: Gramine refuses the manifest"))
        for later in paths[i + 1 :]:
            if later != path and path.startswith(later.rstrip("/") + "/"):
                reasons.append(
                    Reason("manifest.mounts", f"the mount at {path} is hidden by the later mount at {later}")
                )
    if is_vnf:
        sealed = [m for m in mounts if m.get("type") == "encrypted"]
        if not sealed:
            reasons.append(
                Reason("manifest.sealing", "no encrypted mount for the enclave's sealed key and credentials")
            )
        for m in sealed:
            if m.get("key_name") not in SEALING_KEYS:
                reasons.append(
                    Reason(
                        "manifest.sealing",
                        f"encrypted mount {m.get('path')!r} has key_name {m.get('key_name')!r}: use _sgx_mrenclave "
                        "(or _sgx_mrsigner for upgrade-friendly sealing), a key bound to the enclave",
                    )
                )
        allowed = [p for p in (_uri_path(e) for e in sgx.get("allowed_files", []) or []) if p]
        for m in sealed:
            uri = str(m.get("uri", "")).removeprefix("file:")
            if uri and any(uri.startswith(a.rstrip("/")) or a.startswith(uri) for a in allowed):
                reasons.append(
                    Reason("manifest.sealing", f"the sealed storage {uri} is also an allowed (unprotected) file")
                )
        if not any(p.endswith("/vm-ca.pem") or (p.endswith("/") and exists(p + "vm-ca.pem")) for p in trusted):
            reasons.append(
                Reason(
                    "manifest.pin",
                    "the pinned VM CA (vm-ca.pem of the image) is not a trusted file: it would not be part of MRENCLAVE",
                )
            )
        if not any(m.get("type") == "tmpfs" and m.get("path") == "/tmp" for m in mounts):  # noqa: S108
            reasons.append(
                Reason("manifest.tmpfs", "no tmpfs at /tmp: the TLS client would load its key through host files")
            )
    return reasons
