"""The VM <-> agent protocol: JSON Schema files for every message, and the helpers both sides use.

``validate(name, document)`` checks a message against ``schemas/<name>.json`` and raises an
:class:`~floodlight_trust.errors.InputError` naming the JSON path of the first problem. Every
message is validated where it crosses a trust boundary: the VM validates what agents and admins
send, the agent validates what the VM sends. ``validate_outbound`` checks what a side is about to
send, so that a bug shows up at its source; it runs only when ``CHECK_OUTBOUND`` is on (tests, and
``FTRUST_CHECK_OUTBOUND=1`` for debugging), because re-checking documents the process built itself
cost about a tenth of an enrollment's CPU time and protects against nothing an attacker controls.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pybase64

from floodlight_trust.errors import InputError
from floodlight_trust.protocol.accept import Check, compile_schema

SCHEMA_NAMES = (
    "admin_enroll",
    "admin_host",
    "admin_reattest",
    "admin_reload",
    "admin_repin",
    "admin_revoke",
    "admin_vnf",
    "agent_info",
    "challenge",
    "credentials",
    "credentials_ack",
    "enclave_evidence",
    "enclave_info",
    "enclave_quote",
    "enclave_request",
    "enclave_response",
    "enrollment",
    "error",
    "host_evidence",
    "host_verdict",
    "nonce_request",
    "nonce_response",
    "tpm_activated",
    "tpm_activation",
    "tpm_registration",
)


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of message ``name``."""
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    text = resources.files("floodlight_trust.protocol").joinpath("schemas", f"{name}.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    s = schema(name)
    cls = jsonschema.validators.validator_for(s)
    cls.check_schema(s)
    return cls(s)


@cache
def _accept(name: str) -> Check | None:
    s = schema(name)
    return compile_schema(s, jsonschema.validators.validator_for(s).VALIDATORS)


def validate(name: str, document: Any) -> None:
    """Raise InputError unless ``document`` is a valid ``name`` message.

    A document the schema's accept-only check (``protocol/accept.py``) passes is valid; any other
    is judged, and its first problem named, by jsonschema."""
    accept = _accept(name)
    if accept is not None and accept(document):
        return
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = "/" + "/".join(str(p) for p in e.absolute_path)[:MAX_ECHO]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        # jsonschema's message quotes the offending value: only a short prefix of it is echoed.
        message = e.message if len(e.message) <= MAX_ECHO else e.message[:MAX_ECHO] + "..."
        raise InputError(f"invalid {name} message at {path}: {message}{more}")


MAX_ECHO = 120  # characters of an offending value a schema error may echo


CHECK_OUTBOUND = os.environ.get("FTRUST_CHECK_OUTBOUND", "") not in ("", "0")


def validate_outbound(name: str, document: Any) -> None:
    """Validate a message this process built and is about to send, when ``CHECK_OUTBOUND`` is on."""
    if CHECK_OUTBOUND:
        validate(name, document)


def b64decode(text: str, *, what: str) -> bytes:
    """Strict base64 decoding with an InputError naming the field."""
    try:
        # SIMD decoding first (an IMA list is megabytes: the standard library's strict decoding
        # spends ~100 ms on a 100,000-entry list, pybase64 ~4 ms). pybase64 is the standard
        # library's drop-in: what it accepts with validate=True is what base64 accepts, with the
        # same bytes (tests/protocol/test_base64.py); anything it refuses gets the reference verdict.
        return bytes(pybase64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, TypeError):
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what} is not valid base64") from None


def b64encode(data: bytes | memoryview) -> str:
    return pybase64.b64encode(data).decode("ascii")
