"""Where a policy's silence means "anything goes": the checks `ftrust policy check` adds to checking.

Pure: a compiled :class:`~policy_lang.compile.Policy` in, findings out (each located at the
declaration it is about). One is an error, because the host attestation it opens is the one the
whole chain rests on; the others are warnings the author should read (docs/policy-language.md,
"Open-ended rules"):

- ``host.integrity_enclave`` (error): a host policy with no ``integrity_enclave``, or naming an
  enclave policy without an identity rule (MRENCLAVE or MRSIGNER): any enclave's quote, a debug one
  included, would vouch for the host's IMA list. Opt out only with ``UNSAFE_any_integrity_enclave =
  true`` (the VM then notes INSECURE on every verdict).
- ``enclave.identity``: an enclave policy used by an enroll rule that never tests MRENCLAVE or
  MRSIGNER: any enclave on a trusted host gets a certificate.
- ``enclave.tcb``: an enclave policy that never tests ``tcb_status``: any TCB level is accepted
  (OutOfDate, ConfigurationNeeded, ...).
- ``enclave.svn``: an enclave policy whose identity rests on MRSIGNER alone and never tests
  ``isv_svn``: every version the signer ever built is accepted, the vulnerable old ones too.
- ``enclave.advisories``: an enclave policy with no ``deny advisories``/``tolerate advisories`` and no
  rule on ``advisory_ids``: whatever advisories the platform's TCB level carries are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from floodlight_trust.errors import Location, PolicyError

IDENTITY_CLAIMS = frozenset({"mrenclave", "mrsigner"})
UNSAFE_INTEGRITY_SETTING = "UNSAFE_any_integrity_enclave"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # host.integrity_enclave, enclave.identity, enclave.tcb, enclave.svn, enclave.advisories
    level: str  # "error" | "warning"
    location: Location
    message: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level,
            "location": str(self.location),
            "message": self.message,
            "hint": self.hint,
        }

    def error(self) -> PolicyError:
        return PolicyError(self.message, location=self.location, hint=self.hint)


def _claims(expr: Any) -> Iterator[str]:
    """Every claim a typed expression (and the named rules it uses) tests."""
    if expr is None:
        return
    if getattr(expr, "kind", None) == "claim":
        yield expr.name
    for arg in getattr(expr, "args", ()):
        yield from _claims(arg)


def tested_claims(enclave: Any) -> frozenset[str]:
    return frozenset(c for rule in enclave.rules for c in _claims(rule.expr))


def _loc(pos: Any) -> Location:
    return Location(pos.file, pos.line or None, pos.column or None)


def open_ended(policy: Any) -> list[Finding]:
    """Every open-ended rule of ``policy``, errors first, then in source order."""
    out: list[Finding] = []
    for name, host in policy.hosts.items():
        if host.unsafe_any_integrity_enclave is not None:
            continue
        if host.integrity_enclave is None:
            out.append(
                Finding(
                    "host.integrity_enclave",
                    "error",
                    _loc(host.pos),
                    f"host policy {name!r} names no integrity enclave: any enclave's quote (a debug one too) "
                    "would vouch for the host's IMA list",
                    f"add `integrity_enclave = ENCLAVE_POLICY` with an identity rule, or (never in production) "
                    f"`{UNSAFE_INTEGRITY_SETTING} = true`",
                )
            )
            continue
        enclave = policy.enclaves.get(host.integrity_enclave)
        if enclave is not None and not tested_claims(enclave) & IDENTITY_CLAIMS:
            out.append(
                Finding(
                    "host.integrity_enclave",
                    "error",
                    _loc(host.pos),
                    f"host policy {name!r}: its integrity enclave policy {host.integrity_enclave!r} tests neither "
                    "mrenclave nor mrsigner: any enclave would do",
                    f"add an identity rule to enclave {host.integrity_enclave!r}, e.g. "
                    '`identity: mrenclave in {"<hex>"}`',
                )
            )
    used = {r.enclave_policy for r in policy.enrolls}
    for name, enclave in policy.enclaves.items():
        claims = tested_claims(enclave)
        if name in used and not claims & IDENTITY_CLAIMS:
            out.append(
                Finding(
                    "enclave.identity",
                    "warning",
                    _loc(enclave.pos),
                    f"enclave policy {name!r} tests neither mrenclave nor mrsigner: any enclave on a trusted host "
                    "would be enrolled",
                    'e.g. `identity: mrenclave in {"<hex>"} and mrsigner in {"<hex>"}`',
                )
            )
        if "tcb_status" not in claims:
            out.append(
                Finding(
                    "enclave.tcb",
                    "warning",
                    _loc(enclave.pos),
                    f"enclave policy {name!r} never tests tcb_status: any TCB level is accepted",
                    "e.g. `tcb: tcb_status in {UpToDate, SWHardeningNeeded}`",
                )
            )
        if "mrsigner" in claims and "mrenclave" not in claims and "isv_svn" not in claims:
            out.append(
                Finding(
                    "enclave.svn",
                    "warning",
                    _loc(enclave.pos),
                    f"enclave policy {name!r} admits by mrsigner but never tests isv_svn: every version the signer "
                    "built is accepted, old vulnerable ones too",
                    "e.g. `svn: isv_svn >= 3`",
                )
            )
        kinds = {rule.kind for rule in enclave.rules}
        if not kinds & {"deny_advisories", "tolerate_advisories"} and "advisory_ids" not in claims:
            out.append(
                Finding(
                    "enclave.advisories",
                    "warning",
                    _loc(enclave.pos),
                    f"enclave policy {name!r} says nothing about advisories: any advisory of the platform's TCB "
                    "level is accepted",
                    'e.g. `tolerate advisories {"INTEL-SA-00334"}` (only these) or `deny advisories {...}`',
                )
            )
    out.sort(key=lambda f: (f.level != "error", f.location.file or "", f.location.line or 0))
    return out
