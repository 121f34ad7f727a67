"""Checks both judges share: the challenge nonce, the quote's verification outcome, and the
:class:`Checks` collector that runs named checks and keeps every reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from floodlight_trust.clock import format_time
from floodlight_trust.protocol.binding import NONCE_BYTES
from floodlight_trust.reasons import Reason, denials

if TYPE_CHECKING:
    from floodlight_trust.claims import EnclaveClaims
    from floodlight_trust.storage.records import NonceRecord


class Checks:
    """Run named checks and keep every reason in order (the ``AllOf`` of sigstore-python): a
    check returns its reasons (none: it passed) and never stops the others. ``ran`` names the
    checks that ran, in order, for tests and the audit evidence."""

    def __init__(self) -> None:
        self.reasons: list[Reason] = []
        self.ran: list[str] = []

    def run(self, name: str, check: Callable[[], Iterable[Reason]]) -> bool:
        """Run ``check``; True when it reported no deny-level reason."""
        found = check()
        self.ran.append(name)
        if type(found) is list and not found:  # (most checks pass: nothing to copy or filter)
            return True
        found = list(found)
        self.reasons.extend(found)
        return not denials(found)

    def add(self, name: str, found: Iterable[Reason]) -> bool:
        """Record the reasons of a check the caller ran (one that also returns a value)."""
        found = list(found)
        self.ran.append(name)
        self.reasons.extend(found)
        return not denials(found)

    @property
    def passed(self) -> bool:
        return not denials(self.reasons)


def _nonce_reason(message: str, hint: str | None = None) -> Reason:
    return Reason("protocol.nonce", message + (f" (hint: {hint})" if hint else ""))


def check_nonce(
    stored: NonceRecord | None, nonce: bytes, *, purpose: str, host: str, vnf: str | None, at: datetime
) -> list[Reason]:
    """The evidence answers a fresh, unused nonce this VM issued for this purpose, host and VNF
    (``stored`` is the VM's record of it, looked up in constant time by the store)."""
    if len(nonce) != NONCE_BYTES:
        return [_nonce_reason(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")]
    if stored is None:
        return [
            _nonce_reason(
                "nonce unknown: this Verification Manager did not issue it for this host (and VNF),"
                " or it was altered",
                "ask for a fresh nonce and attest again",
            )
        ]
    if stored.used_at is not None:
        return [
            _nonce_reason(
                f"nonce replayed: it was already used at {format_time(stored.used_at)}",
                "every attestation needs a fresh nonce",
            )
        ]
    if at >= stored.expires_at:
        return [
            _nonce_reason(
                f"nonce expired at {format_time(stored.expires_at)} (verification at {format_time(at)})",
                "evidence must come back within vm.nonce_ttl_seconds",
            )
        ]
    if stored.purpose != purpose:
        return [_nonce_reason(f"nonce was issued for {stored.purpose} evidence, not {purpose} evidence")]
    if stored.host != host:
        return [_nonce_reason(f"nonce was issued for host {stored.host!r}, not {host!r}")]
    if purpose == "enclave" and stored.vnf is not None and stored.vnf != vnf:
        return [_nonce_reason(f"nonce was issued for VNF {stored.vnf!r}, not {vnf!r}")]
    return []


def check_quote(outcome: EnclaveClaims | Reason | None) -> list[Reason]:
    """The quote verified (DCAP against the trust anchors, or IAS's signed report). ``outcome`` is
    what the shell's quote verification gave: the claims, the reason it failed, or None when it did
    not run (a check before it failed, which reported already)."""
    return [outcome] if isinstance(outcome, Reason) else []
