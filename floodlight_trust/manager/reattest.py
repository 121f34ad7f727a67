"""Continuous re-attestation: every trusted host, every ``vm.reattest_interval_seconds``.

One round for one host (:meth:`ReattestScheduler.run_host`):

1. Challenge the host's registered agent and judge its evidence (``VerificationManager.attest_host``,
   authoritative): quote, binding, integrity enclave, and the IMA list appraised *incrementally*
   from the state of the previous trusted round (kept in memory and persisted with the host, so a
   restarted VM resumes; a changed prefix is ``ImaPrefixChanged``). An untrustworthy host, or one
   unreachable past ``vm.grace_period_seconds``, has every live certificate of every VNF on it
   revoked in one transaction, the CRL is republished at once, and the audit log says why.
2. On a trusted host, each VNF with an active certificate is attested again (fresh nonce, quote
   binding its key) and receives a new short-lived certificate for the same enclave key, delivered
   to the agent; the previous certificate is recorded as superseded (not revoked: it expires).
   A VNF whose enclave evidence is now refused (identity no longer matching policy, another
   platform, ...) has its certificates revoked, with the refusal's reasons as the cause.

Rounds never overlap: the loop and an admin-triggered round (``POST /v1/admin/reattest``,
``ftrust vm reattest [HOST]``) take the same lock, so "the next round" is deterministic for the demo.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from floodlight_trust import metrics
from floodlight_trust.clock import format_time
from floodlight_trust.errors import FtrustError, InputError
from floodlight_trust.logs import StateChangeLog
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.reasons import Reason, denial_summary

log = logging.getLogger("floodlight_trust.manager.reattest")
# A host whose agent stays down fails every round: say so when it starts failing (or fails
# differently) and when it works again, not every round.
failures = StateChangeLog(log)

ACTOR = "reattest"


@dataclass
class HostRound:
    """What one round did to one host."""

    host: str
    trusted: bool
    reasons: list[Reason]
    audit_id: int | None
    ima_entries: int
    revoked_serials: list[str] = field(default_factory=list)
    renewed: dict[str, str] = field(default_factory=dict)  # VNF -> new serial
    kept: dict[str, str] = field(default_factory=dict)  # VNF -> serial kept (attested, validity left)
    refused: dict[str, list[Reason]] = field(default_factory=dict)  # VNF -> why its enclave was refused
    failed: dict[str, str] = field(default_factory=dict)  # VNF -> transport/service error (nothing revoked)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "trusted": self.trusted,
            "reasons": [r.to_json() for r in self.reasons],
            "audit_id": self.audit_id,
            "ima_entries": self.ima_entries,
            "revoked_serials": self.revoked_serials,
            "renewed": self.renewed,
            "kept": self.kept,
            "refused": {v: [r.to_json() for r in rs] for v, rs in self.refused.items()},
            "failed": self.failed,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class RoundReport:
    number: int
    started_at: datetime
    hosts: list[HostRound]
    seconds: float

    @property
    def revoked_serials(self) -> list[str]:
        return [s for h in self.hosts for s in h.revoked_serials]

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "started_at": format_time(self.started_at),
            "seconds": round(self.seconds, 4),
            "hosts": [h.to_json() for h in self.hosts],
            "revoked_serials": self.revoked_serials,
        }


class ReattestScheduler:
    """Runs rounds on an interval in a daemon thread; :meth:`stop` ends it cleanly.

    ``interval_seconds`` <= 0 disables the loop (rounds still run on request). ``renew`` renews the
    certificates of the VNFs on each trusted host every round (short-lived certificates).
    """

    def __init__(self, vm: VerificationManager, *, interval_seconds: float, renew: bool = True):
        self.vm = vm
        self.interval = float(interval_seconds)
        self.renew = renew
        self._round_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last: RoundReport | None = None

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> ReattestScheduler:
        if self.interval <= 0 or self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="reattest", daemon=True)
        self._thread.start()
        log.info("re-attesting every trusted host every %s s", self.interval)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop; a round in progress finishes its current host first (no half decisions)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        # Fixed cadence on the monotonic clock (a wait, not a time of day: clock.py is not involved).
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.run_round()
            except Exception:  # the loop must outlive any one bad round; the error is logged in full
                log.exception("re-attestation round failed")
            next_at = max(next_at + self.interval, time.monotonic())

    # -- rounds ----------------------------------------------------------------------------------
    def hosts_due(self) -> list[str]:
        """Hosts re-attested each round: every trusted host with a registered agent."""
        return [h.name for h in self.vm.storage.hosts.all() if h.agent_url and h.status == "trusted"]

    def run_round(self, hosts: list[str] | None = None) -> RoundReport:
        """One round now, over ``hosts`` (default :meth:`hosts_due`). Waits for a running round first."""
        with self._round_lock:
            started, t0 = self.vm.now(), time.perf_counter()
            results = []
            for host in hosts if hosts is not None else self.hosts_due():
                if self._stop.is_set() and hosts is None:
                    break
                results.append(self._run_host_locked(host))
            self.rounds += 1
            report = RoundReport(self.rounds, started, results, time.perf_counter() - t0)
            metrics.REATTEST_ROUND_SECONDS.observe(report.seconds)
            self.last = report
            return report

    def run_host(self, host: str) -> HostRound:
        """One round for one host now (any status: an admin may bring an untrusted host back)."""
        self.vm.storage.hosts.get(host)  # InputError for an unknown host
        return self.run_round([host]).hosts[0]

    def _run_host_locked(self, host: str) -> HostRound:
        t0 = time.perf_counter()
        try:
            verdict = self.vm.attest_host(host, actor=ACTOR)
        except Exception as e:  # any failure is contained to this host; the round goes on
            metrics.REATTEST_HOST_FAILURES.labels(error=type(e).__name__).inc()
            message = e.message if isinstance(e, FtrustError) else f"{type(e).__name__}: {str(e)[:200]}"
            # Logged when it starts failing (or fails differently), not every round; a bug reached by
            # this host's data keeps its traceback for the developers.
            if failures.report(("host", host), message, "re-attestation of %s failed: %s", host, message,
                               level=logging.ERROR) and not isinstance(e, FtrustError):  # fmt: skip
                log.debug("re-attestation of %s: traceback", host, exc_info=e)
            try:
                verdict = self.vm.host_attestation.judging_failed(host, e, actor=ACTOR)
            except Exception as again:
                log.error("recording the failed re-attestation of %s failed too: %s", host, again)
                reason = Reason("host.judging_failed", message)
                return HostRound(host, False, [reason], None, 0, seconds=time.perf_counter() - t0)
        else:
            failures.clear(("host", host), "re-attestation of %s works again", host)
        result = HostRound(
            host,
            verdict.trusted,
            list(verdict.reasons),
            verdict.audit_id,
            verdict.ima_entries,
            list(verdict.revoked_serials),
        )
        if verdict.revoked_serials:
            log.warning(
                "host %s is untrustworthy: revoked %d certificate(s): %s",
                host,
                len(verdict.revoked_serials),
                denial_summary(verdict.reasons),
            )
        if verdict.trusted and self.renew:
            self._renew(host, result)
        result.seconds = time.perf_counter() - t0
        return result

    def _renew(self, host: str, result: HostRound) -> None:
        latest: dict[str, str] = {}
        for e in self.vm.storage.enrollments.enrollments(host=host, active_only=True):
            latest[e.vnf] = e.key_mode
        refused: list[tuple[str, str | None, str]] = []
        for vnf, key_mode in sorted(latest.items()):
            try:
                enrolled = self.vm.enroll(host, vnf, actor=ACTOR, key_mode=key_mode, renew_before=self.vm.renew_before)
            except Exception as e:  # agent down mid-round, install failed, a bug: contained to this VNF
                message = e.message if isinstance(e, FtrustError) else f"{type(e).__name__}: {str(e)[:200]}"
                result.failed[vnf] = message
                failures.report(("renew", host, vnf), message, "renewal of %s on %s failed: %s", vnf, host, message)
                continue
            failures.clear(("renew", host, vnf), "renewal of %s on %s works again", vnf, host)
            if enrolled.allowed:
                assert enrolled.serial is not None
                (result.kept if enrolled.kept else result.renewed)[vnf] = enrolled.serial
            else:
                result.refused[vnf] = list(enrolled.reasons)
                why = f"re-attestation of VNF {vnf} refused: " + denial_summary(enrolled.reasons)
                refused.append((host, vnf, why))
        if refused:
            result.revoked_serials += self.vm.revocation.revoke_batch(refused, crl_reason="keyCompromise", actor=ACTOR)

    def status(self) -> dict[str, Any]:
        return {
            "interval_seconds": self.interval,
            "running": self.running,
            "renew": self.renew,
            "rounds": self.rounds,
            "last_round": self.last.to_json() if self.last else None,
        }


def check_interval(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InputError(f"re-attestation interval must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise InputError("re-attestation interval must be >= 0 (0 disables the loop)")
    return seconds
