"""Reference lists: the large allowlists a host policy includes, and generating them.

Formats:
- ``sha256sum`` text (``<hex>  <path>``, one per line, as ``sha256sum`` writes it, including its
  backslash escaping of names with ``\\`` or newlines). Any of the usual digest lengths (SHA-1,
  SHA-256, SHA-384, SHA-512) is accepted; ``#`` lines and blank lines are skipped.
- Keylime runtime policies (JSON), validated against Keylime's schema, optionally inside a DSSE
  envelope whose signature is verified against a given public key.

Everything here is pure: bytes in, values out. Errors are located ``PolicyError``\\ s.
:func:`compiled_reference` is the entry point the compiler uses: it reuses the parsed list of an
earlier call with the same inputs (content hash, format, names, verification key).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

from floodlight_trust.claims import ImaClaims
from floodlight_trust.errors import Location, PolicyError
from policy_lang.parser import PolicyErrors

_DIGEST_LENGTHS = frozenset((40, 64, 96, 128))
_LOWER_HEX = re.compile(r"[0-9a-f]*")


Digests = str | frozenset[str]  # one allowed digest (the common case, no set to build) or several


@dataclass(slots=True)
class ReferenceList:
    """Digests allowed per path, and (Keylime) exclude regexes, from one file."""

    source: str
    digests: dict[str, Digests]
    exclude_regexes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Keylime's ima.log_hash_alg: the template-hash algorithm the measurement list must use.
    log_hash_alg: str | None = None
    log_hash_alg_line: int | None = None

    def __len__(self) -> int:
        return len(self.digests)


def _unescape_sha256sum(path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\" and i + 1 < len(path):
            out.append({"n": "\n", "\\": "\\", "r": "\r"}.get(path[i + 1], path[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def as_set(value: Digests) -> frozenset[str]:
    return frozenset((value,)) if isinstance(value, str) else value


def union(a: Digests | None, b: Digests) -> Digests:
    if a is None or a == b:
        return b
    return as_set(a) | as_set(b)


def parse_sha256sum(text: str, source: str) -> ReferenceList:
    """Parse a ``sha256sum``-format reference list. Raises PolicyError at ``source:line``."""
    fast = _parse_plain(text, source)
    return fast if fast is not None else _parse_sha256sum_lines(text, source)


def _parse_plain(text: str, source: str) -> ReferenceList | None:
    """A file of nothing but plain lines ("<lowercase hex>  <path>", one digest length, no duplicate
    paths, no escapes, comments or blank lines) is parsed column-wise at C speed; None otherwise."""
    if not text or "\r" in text or "\\" in text:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        return None
    width = len(lines[0].partition(" ")[0])
    if width not in _DIGEST_LENGTHS:
        return None
    digests = [line[:width] for line in lines]
    if not {line[width : width + 2] for line in lines} <= {"  ", " *"}:
        return None
    paths = [line[width + 2 :] for line in lines]
    if min(map(len, paths)) == 0 or not _LOWER_HEX.fullmatch("".join(digests)):
        return None
    if len(set(map(len, digests))) != 1:
        return None
    table: dict[str, Digests] = dict(zip(paths, digests, strict=True))
    if len(table) != len(lines):
        return None
    return ReferenceList(source, table)


def _parse_sha256sum_lines(text: str, source: str) -> ReferenceList:
    acc: dict[str, Any] = {}
    digests: list[str] = []
    dup = False
    errors: list[PolicyError] = []  # every malformed line, as a syntax error report lists each
    # Only "\n" ends a line (str.splitlines would also split on \x1c, \x85, ... inside names).
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line and line[-1] == "\r":  # tolerate CRLF files; a real CR in a name is written as \r
            line = line[:-1]
        if not line or line[0] == "#":
            continue
        escaped = line[0] == "\\"
        if escaped:
            line = line[1:]
        digest, _, path = line.partition(" ")
        if len(digest) not in _DIGEST_LENGTHS or len(path) < 2 or path[0] not in " *":
            if not line.strip():
                continue
            errors.append(
                PolicyError(
                    "malformed reference list line: expected '<hex digest>  <path>'"
                    + (f" (the digest has {len(digest)} characters)" if path[:1] in (" ", "*") and digest else ""),
                    location=Location(source, lineno, 1),
                    hint="the format of sha256sum output: 40, 64, 96 or 128 hex digits, two spaces, the path",
                )
            )
            continue
        path = path[1:]
        if escaped:
            path = _unescape_sha256sum(path)
        digests.append(digest)
        prev = acc.get(path)
        if prev is None:
            acc[path] = digest
        else:
            dup = True
            if isinstance(prev, str):
                acc[path] = [prev, digest]
            else:
                prev.append(digest)
    # Validate all hex digits at once (C speed); find the culprit lines only on failure.
    joined = "".join(digests)
    if not _LOWER_HEX.fullmatch(joined):
        errors.extend(_find_bad_hex(text, source))
    if errors:
        errors.sort(key=lambda e: e.location.line or 0 if e.location else 0)
        raise errors[0] if len(errors) == 1 else PolicyErrors(errors)
    if not _LOWER_HEX.fullmatch(joined):
        joined_lower = joined.lower()
        if _LOWER_HEX.fullmatch(joined_lower):  # uppercase hex is fine, normalise it
            return parse_sha256sum(_lower_digests(text), source)
    result: dict[str, Digests] = acc
    if dup:
        result = {p: v if isinstance(v, str) else frozenset(v) for p, v in acc.items()}
    return ReferenceList(source, result)


def _lower_digests(text: str) -> str:
    out = []
    for line in text.split("\n"):
        if line and line[0] != "#":
            prefix = "\\" if line[0] == "\\" else ""
            body = line[len(prefix) :]
            digest, sep, rest = body.partition(" ")
            line = prefix + digest.lower() + sep + rest
        out.append(line)
    return "\n".join(out)


def _find_bad_hex(text: str, source: str) -> list[PolicyError]:
    found: list[PolicyError] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line or line[0] == "#":
            continue
        digest, _, path = line.lstrip("\\").partition(" ")
        if len(digest) not in _DIGEST_LENGTHS or len(path) < 2 or path[0] not in " *":
            continue  # malformed otherwise: reported as such
        try:
            bytes.fromhex(digest)
        except ValueError:
            found.append(
                PolicyError(
                    f"malformed reference list line: {digest[:16]!r}... is not a hex digest",
                    location=Location(source, lineno, 1),
                )
            )
    return found


def _sha256sum_line(digest: str, path: str) -> str:
    if "\\" in path or "\n" in path or "\r" in path:
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {path}\n"


def generate_reference_list(claims: ImaClaims) -> str:
    """A ``sha256sum``-format reference list of every measured (path, digest) of a known-good host.

    Violations (zeroed digests) are left out; lines are unique and sorted by path, then digest, so
    the output is stable across boots with the same files.
    """
    violations = claims.violations
    pairs: set[tuple[str, str]] = set()
    for i, (path, digest) in enumerate(zip(claims.paths, claims.digests, strict=True)):
        if i in violations or not digest.strip("0"):
            continue
        pairs.add((path, digest))
    return "".join(_sha256sum_line(d, p) for p, d in sorted(pairs))


def generate_keylime_policy(claims: ImaClaims) -> tuple[str, int]:
    """A Keylime runtime policy (format version 1, as ``keylime-policy create runtime`` writes) of
    every measured (path, digest) of a known-good host, and how many entries it left out.

    Files go to ``digests``, measured buffers (``ima-buf``) to ``ima-buf``, keys measured onto a
    keyring (an ima-buf entry named ``.ima``, ``.builtin_trusted_keys``, ...) to ``keyrings``;
    violations and digests shorter than the schema allows (md5) are left out. No timestamp and
    sorted keys, so the same host gives the same bytes; ``ima.log_hash_alg`` is the list's.
    """
    violations = claims.violations
    maps: dict[str, dict[str, set[str]]] = {"digests": {}, "ima-buf": {}, "keyrings": {}}
    skipped = 0
    for i, (template, path, digest) in enumerate(zip(claims.templates, claims.paths, claims.digests, strict=True)):
        if i in violations or not digest.strip("0"):
            continue
        if not _KEYLIME_DIGEST.fullmatch(digest):
            skipped += 1
            continue
        kind = "digests" if template != "ima-buf" else ("keyrings" if path.startswith(".") else "ima-buf")
        maps[kind].setdefault(path, set()).add(digest)
    doc = {
        "meta": {"version": 1, "generator": 0},
        "release": 0,
        "digests": {p: sorted(v) for p, v in sorted(maps["digests"].items())},
        "excludes": [],
        "keyrings": {p: sorted(v) for p, v in sorted(maps["keyrings"].items())},
        "ima": {"ignored_keyrings": [], "log_hash_alg": claims.log_hash_algorithm or "sha1", "dm_policy": None},
        "ima-buf": {p: sorted(v) for p, v in sorted(maps["ima-buf"].items())},
        "verification-keys": "",
    }
    return json.dumps(doc, indent=1) + "\n", skipped


def sign_dsse_envelope(payload: bytes, private_key_pem: bytes, password: bytes | None = None) -> str:
    """A DSSE envelope (as ``keylime-policy sign`` writes) over ``payload`` with an ECDSA P-256
    (SHA-256, DER signature) or RSA (PSS, SHA-256) private key; :func:`verify_dsse_envelope` and
    Keylime read it. Raises PolicyError for a key it cannot use."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        key = serialization.load_pem_private_key(private_key_pem, password=password)
    except TypeError:
        raise PolicyError(
            "the signing key is encrypted and no password was given"
            if password is None
            else "the signing key is not encrypted, but a password was given"
        ) from None
    except ValueError:
        raise PolicyError("not a PEM private key, or the password is wrong") from None
    pae = _pae(DSSE_PAYLOAD_TYPE, payload)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(pae, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256())
    else:
        raise PolicyError("the signing key must be ECDSA P-256 or RSA")
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": DSSE_PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode("ascii")}],
    }
    return json.dumps(envelope) + "\n"


# ---- Keylime runtime policies ----------------------------------------------------------------

DSSE_PAYLOAD_TYPE = "application/vnd.keylime+json"


@functools.cache
def keylime_schema() -> dict[str, Any]:
    """The JSON schema of Keylime runtime policies (format version 1)."""
    from importlib import resources

    text = resources.files("policy_lang").joinpath("keylime_runtime_policy.schema.json").read_text("utf-8")
    return dict(json.loads(text))


@functools.cache
def _skeleton_validator() -> Any:
    import jsonschema

    schema = json.loads(json.dumps(keylime_schema()))
    # The three digests objects hold 10^5 entries; they are checked by _check_digests_object
    # (the same constraints, at C speed), everything else by jsonschema.
    schema["definitions"]["digests-object"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


@functools.cache
def _full_validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(keylime_schema())


_KEYLIME_DIGEST = re.compile(r"[0-9a-f]{40,128}")


def _json_line(text: str, needle: str) -> int | None:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _json_position(text: str, path: list[Any], instance: Any) -> tuple[int | None, int | None]:
    """(line, column) of the failing value in the JSON text: the value itself when it is a scalar
    found after its key, else its key. A minified policy is one long line; the column (and the
    excerpt the command line shows around it) finds the field in it."""
    at = -1
    keys = [p for p in path if isinstance(p, str)]
    if keys:
        at = text.find(json.dumps(keys[-1]) + ":")
        if at < 0:
            at = text.find(json.dumps(keys[-1]))
    if isinstance(instance, str | int | float | bool) and instance is not None:
        value_at = text.find(json.dumps(instance), max(at, 0))
        if value_at >= 0:
            at = value_at
    if at < 0:
        return None, None
    line_start = text.rfind("\n", 0, at) + 1
    return text.count("\n", 0, at) + 1, at - line_start + 1


def _excerpt(instance: Any, limit: int = 80) -> str:
    text = repr(instance) if isinstance(instance, str) else json.dumps(instance)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _schema_error(doc: Any, text: str, source: str) -> PolicyError:
    errors = sorted(_full_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    err = errors[0]
    path = list(err.absolute_path)
    where = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path) or "(top level)"
    line, column = _json_position(text, path, err.instance)
    # jsonschema's message repeats the whole failing value (a 2 KB object for a wrong top level);
    # the field path and a short excerpt say the same.
    message = err.message
    full = json.dumps(err.instance)
    if len(full) > 80:
        message = message.replace(repr(err.instance), _excerpt(err.instance)).replace(full, _excerpt(err.instance))
    if len(message) > 200:
        message = f"{err.validator} check failed on {_excerpt(err.instance)}"
    return PolicyError(
        f"Keylime runtime policy fails the schema at {where}: {message}",
        location=Location(source, line, column),
    )


def _check_digests_object(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    values = list(obj.values())
    if values and set(map(type, values)) == {list} and 0 not in set(map(len, values)):
        # Column-wise first (C-level passes over all the digests at once): every item a str of 40
        # to 128 characters, all of them lowercase hex, is every item matching the pattern.
        flat = list(chain.from_iterable(values))
        if set(map(type, flat)) == {str}:
            lengths = set(map(len, flat))
            if min(lengths) >= 40 and max(lengths) <= 128:
                return _LOWER_HEX.fullmatch("".join(flat)) is not None
    match = _KEYLIME_DIGEST.fullmatch
    for values in obj.values():
        if type(values) is not list or not values:
            return False
        for v in values:
            if type(v) is not str or match(v) is None:
                return False
    return True


def parse_keylime(text: str, source: str) -> ReferenceList:
    """Parse and validate a Keylime runtime policy (JSON, not an envelope)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyError(f"not valid JSON: {e.msg}", location=Location(source, e.lineno, e.colno)) from None
    if isinstance(doc, dict) and "payload" in doc and "signatures" in doc:
        raise PolicyError(
            "this Keylime runtime policy is a signed DSSE envelope",
            location=Location(source),
            hint='add verify_with "PUBLIC-KEY.pem" to the include',
        )
    return keylime_from_document(doc, text, source)


_REQUIRED = ("meta", "release", "digests", "excludes", "keyrings", "ima", "ima-buf", "verification-keys")
_LOG_HASH_ALGS = frozenset(("sha1", "sha256", "sha384", "sha512"))


def _nonneg_int(v: Any) -> bool:
    return type(v) is int and v >= 0


def _str_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _plainly_valid_skeleton(doc: Any) -> bool:
    """True only for a document that plainly meets the schema outside its digests objects, checked
    without jsonschema (whose import and validator build were a third of a fresh process's policy
    load): every value of the exact JSON type the schema asks (``int``, not a float with an integral
    value). False means "ask jsonschema", never "invalid": the schema stays the authority, and the
    tests check that whatever this accepts, jsonschema accepts."""
    if type(doc) is not dict or not all(k in doc for k in _REQUIRED):
        return False
    meta, ima = doc["meta"], doc["ima"]
    if type(meta) is not dict or not (_nonneg_int(meta.get("version")) and _nonneg_int(meta.get("generator"))):
        return False
    if meta["generator"] > 3 or ("timestamp" in meta and type(meta["timestamp"]) is not str):
        return False
    if type(ima) is not dict or not all(k in ima for k in ("ignored_keyrings", "log_hash_alg", "dm_policy")):
        return False
    return (
        all(type(doc[k]) is dict for k in ("digests", "keyrings", "ima-buf"))
        and _nonneg_int(doc["release"])
        and _str_list(doc["excludes"])
        and type(doc["verification-keys"]) is str
        and _str_list(ima["ignored_keyrings"])
        and type(ima["log_hash_alg"]) is str
        and ima["log_hash_alg"] in _LOG_HASH_ALGS
        and ima["dm_policy"] is None
    )


def _valid_skeleton(doc: Any) -> bool:
    if _plainly_valid_skeleton(doc):
        return True
    return next(iter(_skeleton_validator().iter_errors(doc)), None) is None


def keylime_from_document(doc: Any, text: str, source: str) -> ReferenceList:
    if not _valid_skeleton(doc) or not all(
        _check_digests_object(doc.get(k)) for k in ("digests", "keyrings", "ima-buf")
    ):
        raise _schema_error(doc, text, source)
    files = doc["digests"]
    allowed: dict[str, Digests]
    if set(map(len, files.values())) <= {1}:  # one digest per file, the common case: no loop in Python
        allowed = dict(zip(files, map(itemgetter(0), files.values()), strict=True))
    else:
        allowed = {p: v[0] if len(v) == 1 else frozenset(v) for p, v in files.items()}
    # ima-buf entries are keyed by their name; file paths are absolute, so names never collide
    # with files. A keyring measurement (KEY_CHECK) is an ima-buf entry named after the keyring
    # (".ima", ".builtin_trusted_keys", ...) whose digest is that of the key: Keylime's `keyrings`
    # lists the keys each keyring may receive, so they are allowlist entries for those names.
    for name, values in (*doc["ima-buf"].items(), *doc["keyrings"].items()):
        allowed[name] = union(allowed.get(name), frozenset(values))
    for regex in doc["excludes"]:
        try:
            re.compile(regex)
        except re.error as e:
            raise PolicyError(
                f"Keylime runtime policy exclude {regex!r} is not a valid regular expression: {e}",
                location=Location(source, _json_line(text, json.dumps(regex))),
            ) from None
    _refuse_verification_keys(doc["verification-keys"], text, source)
    # ima.dm_policy: Keylime's schema admits only null (device-mapper policies are not part of the
    # format's version 1), so the schema check above has already refused anything else, by name.
    excludes = list(doc["excludes"])
    # ima.ignored_keyrings: keys loaded onto these keyrings are not appraised. Keylime recognises a
    # keyring entry by parsing the buffer as a key; claims carry no buffer, so "*" ignores every
    # ima-buf name that looks like a keyring (starts with "." - kernel keyring names do, other
    # ima-buf names such as "kexec-cmdline" or "dm_table_load" do not).
    for name in doc["ima"]["ignored_keyrings"]:
        excludes.append(r"\.[^/]*\Z" if name == "*" else re.escape(name) + r"\Z")
    return ReferenceList(
        source,
        allowed,
        excludes,
        log_hash_alg=doc["ima"]["log_hash_alg"],
        log_hash_alg_line=_json_line(text, '"log_hash_alg"'),
    )


def _keylime_key_ids(value: str) -> list[str] | None:
    """The key ids in Keylime's ``verification-keys`` (a JSON string of ``{keyring: JSON string of
    {"pubkeys": [base64 DER], "keyids": [int]}}``, possibly encoded twice); None if malformed."""
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        rings = json.loads(value)
        if isinstance(rings, str):
            rings = json.loads(rings)
        if isinstance(rings, list) and not rings:
            return []
        if not isinstance(rings, dict):
            return None
        ids: list[str] = []
        for ring in rings.values():
            obj = json.loads(ring) if isinstance(ring, str) else ring
            if not isinstance(obj, dict):
                return None
            keyids = obj.get("keyids") or []
            for n, b64 in enumerate(obj.get("pubkeys") or []):
                if n < len(keyids) and isinstance(keyids[n], int):
                    ids.append(f"{keyids[n]:08x}")
                    continue
                key = serialization.load_der_public_key(base64.b64decode(b64))
                der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - Keylime's key id, an identifier
                digest.update(der)
                ids.append(digest.finalize()[-4:].hex())
        return ids
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return None


def _refuse_verification_keys(value: str, text: str, source: str) -> None:
    """Keylime's ``verification-keys`` (IMA signature keys carried in the policy) would accept any
    file signed by them. The Verification Manager verifies IMA signatures only with the keyring its
    operator configures, so a policy bringing its own keys is refused by name, never ignored."""
    if not value.strip():
        return
    ids = _keylime_key_ids(value)
    line = _json_line(text, '"verification-keys"')
    if ids is None:
        raise PolicyError(
            "Keylime runtime policy verification-keys is not Keylime's keyrings form "
            '(a JSON string of {"KEYRING": {"pubkeys": [...], "keyids": [...]}})',
            location=Location(source, line),
        )
    if ids:
        raise PolicyError(
            f"Keylime runtime policy verification-keys holds {len(ids)} IMA signature key(s) "
            f"(key ids {', '.join(ids)}): floodlight-trust does not take signature keys from a runtime policy",
            location=Location(source, line),
            hint='give their certificates to the VM\'s IMA keyring, declare `key k = "ID"` and write '
            '`require signature "PATTERN" by k` in the host policy; leave verification-keys empty',
        )


def _pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def verify_dsse_envelope(envelope_text: str, public_key_pem: bytes, source: str, key_source: str) -> bytes:
    """Verify a DSSE envelope against one PEM public key (ECDSA or RSA); return the payload bytes.

    Raises PolicyError if the envelope is malformed or no signature verifies.
    """
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, UnsupportedAlgorithm):  # damaged PEM, or a curve OID nobody knows
        raise PolicyError("not a PEM public key (or of an unsupported type)", location=Location(key_source)) from None
    try:
        env = json.loads(envelope_text)
    except json.JSONDecodeError as e:
        raise PolicyError(f"not valid JSON: {e.msg}", location=Location(source, e.lineno, e.colno)) from None
    except (RecursionError, ValueError):
        raise PolicyError(
            "not acceptable JSON (nested too deeply or a number too long)", location=Location(source)
        ) from None
    if not isinstance(env, Mapping) or not {"payload", "payloadType", "signatures"} <= set(env):
        raise PolicyError("not a DSSE envelope (needs payload, payloadType and signatures)", location=Location(source))
    if env["payloadType"] != DSSE_PAYLOAD_TYPE:
        raise PolicyError(
            f"DSSE payloadType is {env['payloadType']!r}, expected {DSSE_PAYLOAD_TYPE!r}", location=Location(source)
        )
    try:
        payload = base64.b64decode(env["payload"], validate=True)
    except (ValueError, TypeError):  # binascii.Error, and non-ASCII text
        raise PolicyError("DSSE payload is not valid base64", location=Location(source)) from None
    if not isinstance(env["payloadType"], str):
        raise PolicyError("DSSE payloadType is not a string", location=Location(source))
    pae = _pae(env["payloadType"], payload)
    sigs = env["signatures"] if isinstance(env["signatures"], list) else []
    for entry in sigs:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sig"), str):
            continue
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            continue
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(sig, pae, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), hashes.SHA256())
            else:
                raise PolicyError("unsupported public key type (ECDSA or RSA)", location=Location(key_source))
            return payload
        except InvalidSignature:
            continue
    raise PolicyError(
        f"DSSE signature does not verify with the key in {key_source} ({len(sigs)} signature(s) tried)",
        location=Location(source),
    )


def parse_keylime_envelope(envelope_text: str, public_key_pem: bytes, source: str, key_source: str) -> ReferenceList:
    """Verify a DSSE-signed Keylime runtime policy, then validate and parse its payload."""
    payload = verify_dsse_envelope(envelope_text, public_key_pem, source, key_source)
    try:
        text = payload.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PolicyError("signed payload is not JSON", location=Location(source)) from None
    return keylime_from_document(doc, text, f"{source} (signed payload)")


# ---- the compiled-reference cache ------------------------------------------------------------

ReferenceFormat = str  # "sha256sum", "keylime" or "keylime-dsse"
_FORMATS = ("sha256sum", "keylime", "keylime-dsse")
_CacheKey = tuple[str, bytes, str, bytes | None, str | None]
_cache: OrderedDict[_CacheKey, ReferenceList] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_MAX_LISTS = 16
_CACHE_MAX_ENTRIES = 2_000_000  # paths over all cached lists (a 100k-entry list is ~30 MiB)


def clear_cache() -> None:
    """Forget every compiled reference list (tests and benchmarks)."""
    with _cache_lock:
        _cache.clear()


def compiled_reference(
    fmt: ReferenceFormat,
    data: bytes,
    source: str,
    key: bytes | None = None,
    key_source: str | None = None,
    *,
    data_sha256: bytes | None = None,
) -> ReferenceList:
    """Parse a reference list file (``fmt``: ``sha256sum``, ``keylime``, or ``keylime-dsse`` with the
    verification ``key``), or return the list parsed by an earlier call with the same inputs.

    The cache is keyed by everything the result depends on: the format, SHA-256 of ``data``, SHA-256
    of ``key``, and the names ``source`` and ``key_source`` (they appear in locations and reasons).
    Only successes are kept; a failing file is parsed, and fails, every time. The result is shared
    between policies: never mutate it. ``data_sha256``: SHA-256 of ``data`` when the caller computed
    it already (the compiler does, for the policy's version). Raises PolicyError, or
    UnicodeDecodeError for non-UTF-8 text.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown reference list format {fmt!r}")
    if (fmt == "keylime-dsse") != (key is not None):
        raise ValueError("a verification key goes with keylime-dsse, and only with it")
    cache_key = (
        fmt,
        data_sha256 if data_sha256 is not None else hashlib.sha256(data).digest(),
        source,
        hashlib.sha256(key).digest() if key is not None else None,
        key_source,
    )
    with _cache_lock:
        hit = _cache.get(cache_key)
        if hit is not None:
            _cache.move_to_end(cache_key)
            return hit
    text = data.decode("utf-8")
    if fmt == "sha256sum":
        ref = parse_sha256sum(text, source)
    elif key is None:
        ref = parse_keylime(text, source)
    else:
        ref = parse_keylime_envelope(text, key, source, key_source or "<key>")
    with _cache_lock:
        _cache[cache_key] = ref
        _cache.move_to_end(cache_key)
        while len(_cache) > _CACHE_MAX_LISTS or (
            len(_cache) > 1 and sum(len(r) for r in _cache.values()) > _CACHE_MAX_ENTRIES
        ):
            _cache.popitem(last=False)
    return ref
