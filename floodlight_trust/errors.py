"""The one error hierarchy of floodlight-trust.

Every error a user can cause says what went wrong (``message``), where (``location``: a file with
line and column for text, or a byte offset for binary input) and, where it helps, what to do
(``hint``). The CLI turns them into one line on stderr and an exit code; nothing here prints.

Exit codes (documented in README and ``ftrust --help``):
    0 success / allowed, 1 verification failed or policy denied, 2 bad input or usage, 3 internal error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DENIED = 1
    BAD_INPUT = 2
    INTERNAL = 3


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the user's input a problem is. Any part may be unknown."""

    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    offset: int | None = None  # byte offset, for binary input
    index: int | None = None  # record index (e.g. IMA entry), when it helps

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        text = ":".join(parts)
        extras: list[str] = []
        if self.index is not None:
            extras.append(f"entry {self.index}")
        if self.offset is not None:
            extras.append(f"offset {self.offset}")
        if extras:
            text = f"{text}:{' '.join(extras)}" if text else " ".join(extras)
        return text

    def in_file(self, file: str) -> Location:
        """The same location, attributed to ``file`` if it had none."""
        if self.file:
            return self
        return Location(file, self.line, self.column, self.offset, self.index)


class FtrustError(Exception):
    """Base of every error floodlight-trust raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def with_file(self, file: str) -> FtrustError:
        """Attach a file name to a location found while parsing bytes that came from ``file``."""
        self.location = (self.location or Location()).in_file(file)
        return self

    def __str__(self) -> str:
        where = str(self.location) if self.location else ""
        return f"{where}: {self.message}" if where else self.message


class InputError(FtrustError):
    """The user's input is malformed or unusable (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class NotFoundError(InputError):
    """The request names something that does not exist (an unregistered host or VNF): exit 2, HTTP 404.

    ``code`` is a stable reason code (``host.unregistered``) for metrics and tests."""

    http_status = 404

    def __init__(
        self, message: str, *, code: str = "not_found", location: Location | None = None, hint: str | None = None
    ):
        super().__init__(message, location=location, hint=hint)
        self.code = code


class ConflictError(InputError):
    """The request conflicts with what exists (a host name already registered): exit 2, HTTP 409."""

    http_status = 409


class ParseError(InputError):
    """Bytes or text could not be parsed; ``location`` points at the offending place."""


class ConfigError(InputError):
    """A configuration file or setting is wrong."""


class PolicyError(InputError):
    """A policy file fails to parse or check."""


class SecretError(InputError):
    """A secret (password) is missing, unreadable or wrong. Never carries the secret itself."""


class VerificationError(FtrustError):
    """Evidence was well-formed but did not verify: signatures, chains, bindings, freshness (exit 1)."""

    exit_code = ExitCode.DENIED


class UnauthenticatedEvidence(VerificationError):
    """Evidence that proves nothing (unknown or spent nonce, a quote that does not verify or bind):
    refused with HTTP 403 and recorded nowhere, only counted (``reasons`` carries every reason)."""

    def __init__(
        self, message: str, *, code: str, reasons: list[dict[str, object]] | None = None, hint: str | None = None
    ):
        super().__init__(message, hint=hint)
        self.code = code
        self.reasons = reasons or []


class ServiceError(FtrustError):
    """A remote service (IAS, PCS, the VM, the controller) failed or answered unexpectedly."""

    exit_code = ExitCode.DENIED


class StorageUnavailable(ServiceError):
    """The state database cannot be reached or used (file gone, server down, disk full): HTTP 503.

    Raised by the storage engines in place of their drivers' errors, so a request fails cleanly with
    one line and nothing half-written (the transaction is rolled back or never began)."""

    http_status = 503


class InternalError(FtrustError):
    """A bug or an environment failure that the user did not cause (exit 3)."""

    exit_code = ExitCode.INTERNAL
