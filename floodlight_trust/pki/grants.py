"""REST grants and the project's certificate OIDs: what a VNF may call on the controller.

One home for the contract between the policy language (which writes grants), the CA (which puts
them into the VNF's certificate) and the controller's enforcement point (``java-bridge/``, which
reads them back). docs/floodlight.md documents it for operators; the Java side
(``ftrust.trust.RestGrants`` / ``VnfCertificate``) implements the same rules.

OIDs live under the project's arc ``2.25.96821760068126637965418207785404257652`` (ITU-T X.667:
the UUID 48d73154-adcf-4455-bb75-b7f7a966d574 as an OID, no registration needed):

- ``ARC.1.1`` certificate policy "attested VNF": every certificate the VM issues to an enrolled
  VNF carries it in certificatePolicies. The controller refuses a client certificate without it
  (admin, controller and any other certificate of the same CA).
- ``ARC.2.1`` the REST grants extension, non-critical, DER::

      FtrustRestGrants ::= SEQUENCE {
          version  INTEGER (1),
          grants   SEQUENCE OF RestGrant }
      RestGrant ::= SEQUENCE {
          method       UTF8String,   -- GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS
          pathPattern  UTF8String }  -- see check_pattern

Path patterns: absolute (``/`` first), segments separated by ``/``; a segment is a literal of
``A-Z a-z 0-9 - . _ ~ : @ ! $ & ' ( ) + , ; =``, or ``*`` (exactly one non-empty segment), or ``**``
as the last segment (zero or more segments). A trailing ``/`` is significant. ``.``/``..``
segments, empty segments (``//``), ``%``, ``?`` and ``#`` are malformed. A request path is
matched as sent; one with percent-encoding, a backslash, ``//`` or a dot segment is refused (it
could mean something else to the router than to the check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from floodlight_trust.errors import Location, ParseError
from floodlight_trust.pki.der import tlv

PROJECT_ARC = "2.25.96821760068126637965418207785404257652"
VNF_POLICY_OID = PROJECT_ARC + ".1.1"
REST_GRANTS_OID = PROJECT_ARC + ".2.1"
GRANTS_VERSION = 1


class HttpMethod(StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"
    PATCH = "PATCH"
    OPTIONS = "OPTIONS"


_LITERAL = re.compile(r"[A-Za-z0-9\-._~:@!$&'()+,;=]+")


def check_pattern(pattern: str) -> list[str]:
    """Every reason ``pattern`` is not a valid path pattern (empty when it is)."""
    problems: list[str] = []
    if not pattern.startswith("/"):
        problems.append("a path pattern starts with '/'")
        return problems
    for bad, why in (("%", "percent-encoding"), ("?", "a query"), ("#", "a fragment"), ("\\", "a backslash")):
        if bad in pattern:
            problems.append(f"a path pattern has no {why} ({bad!r})")
    segments = pattern[1:].split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "" and not last:
            problems.append("empty segment ('//')")
        elif seg in (".", ".."):
            problems.append(f"dot segment {seg!r}")
        elif seg == "**" and not last:
            problems.append("'**' is only allowed as the last segment")
        elif seg not in ("", "*", "**") and "*" in seg:
            problems.append(f"segment {seg!r}: '*' must be a whole segment")
        elif seg not in ("", "*", "**") and "%" not in seg and not _LITERAL.fullmatch(seg):
            problems.append(f"segment {seg!r} has characters outside A-Z a-z 0-9 -._~:@!$&'()+,;=")
    return list(dict.fromkeys(problems))


def path_problem(path: str) -> str | None:
    """Why a request path is refused before any grant is consulted (None: it may be matched)."""
    if not path.startswith("/"):
        return "path is not absolute"
    if "%" in path:
        return "path has percent-encoding"
    if "\\" in path:
        return "path has a backslash"
    segments = path[1:].split("/")
    if any(s == "" for s in segments[:-1]):
        return "path has an empty segment ('//')"
    if any(s.split(";")[0] in (".", "..") for s in segments):  # "..;x" is ".." to some routers
        return "path has a dot segment"
    return None


@dataclass(frozen=True, slots=True)
class RestGrant:
    """One REST permission: an HTTP method on the paths a pattern matches."""

    method: HttpMethod
    pattern: str

    def __post_init__(self) -> None:
        problems = check_pattern(self.pattern)
        if problems:
            raise ValueError(f"path pattern {self.pattern!r}: " + "; ".join(problems))

    def __str__(self) -> str:
        return f"{self.method.value} {self.pattern}"

    def allows(self, method: str, path: str) -> bool:
        if method != self.method.value or path_problem(path) is not None:
            return False
        return _segments_match(self.pattern[1:].split("/"), path[1:].split("/"))

    def to_json(self) -> dict[str, str]:
        return {"method": self.method.value, "path": self.pattern}


def _segments_match(pattern: Sequence[str], path: Sequence[str]) -> bool:
    for i, seg in enumerate(pattern):
        if seg == "**":
            return True  # the last segment (check_pattern): zero or more of what is left
        if i >= len(path):
            return False
        if seg == "*":
            if path[i] == "":
                return False
        elif seg != path[i]:
            return False
    return len(path) == len(pattern)


def allowed(grants: Iterable[RestGrant], method: str, path: str) -> RestGrant | None:
    """The first grant that allows ``method path`` (None: refused)."""
    for g in grants:
        if g.allows(method, path):
            return g
    return None


# -- DER ---------------------------------------------------------------------------------------


def encode_grants(grants: Sequence[RestGrant]) -> bytes:
    """The DER value of the REST grants extension (``FtrustRestGrants``)."""
    items = b"".join(
        tlv(0x30, tlv(0x0C, g.method.value.encode()) + tlv(0x0C, g.pattern.encode("utf-8"))) for g in grants
    )
    return tlv(0x30, tlv(0x02, bytes([GRANTS_VERSION])) + tlv(0x30, items))


class _Der:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None):
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def fail(self, what: str, at: int | None = None) -> ParseError:
        return ParseError(f"REST grants extension: {what}", location=Location(offset=self.pos if at is None else at))

    def read(self, tag: int, what: str) -> tuple[int, int]:
        """(start, end) of the body of the next TLV, which must have ``tag``."""
        at = self.pos
        if self.end - at < 2:
            raise self.fail(f"truncated before {what}")
        if self.data[at] != tag:
            raise self.fail(f"{what}: expected tag 0x{tag:02x}, found 0x{self.data[at]:02x}")
        first = self.data[at + 1]
        p = at + 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 4 or p + n > self.end:
                raise self.fail(f"{what}: bad length", at + 1)
            length = int.from_bytes(self.data[p : p + n], "big")
            if length < 0x80 or self.data[p] == 0:
                raise self.fail(f"{what}: length not in minimal (DER) form", at + 1)
            p += n
        if p + length > self.end:
            raise self.fail(f"{what}: length {length} runs past the end", at + 1)
        self.pos = p + length
        return p, p + length

    def utf8(self, what: str) -> str:
        s, e = self.read(0x0C, what)
        try:
            return self.data[s:e].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8", s) from None

    def done(self, what: str) -> None:
        if self.pos != self.end:
            raise self.fail(f"{self.end - self.pos} trailing bytes after {what}")


def decode_grants(der: bytes) -> tuple[RestGrant, ...]:
    """Parse the extension value; a ParseError (with the byte offset) for anything malformed."""
    outer = _Der(der)
    s, e = outer.read(0x30, "FtrustRestGrants")
    outer.done("FtrustRestGrants")
    body = _Der(der, s, e)
    vs, ve = body.read(0x02, "version")
    if der[vs:ve] != bytes([GRANTS_VERSION]):
        raise body.fail(f"version {int.from_bytes(der[vs:ve], 'big')} is not {GRANTS_VERSION}", vs)
    gs, ge = body.read(0x30, "grants")
    body.done("FtrustRestGrants")
    items = _Der(der, gs, ge)
    grants: list[RestGrant] = []
    while items.pos < items.end:
        at = items.pos
        s, e = items.read(0x30, "RestGrant")
        one = _Der(der, s, e)
        method_text = one.utf8("method")
        pattern = one.utf8("pathPattern")
        one.done("RestGrant")
        try:
            grants.append(RestGrant(HttpMethod(method_text), pattern))
        except ValueError as err:
            raise items.fail(f"grant {len(grants) + 1}: {err}", at) from None
    return tuple(grants)
