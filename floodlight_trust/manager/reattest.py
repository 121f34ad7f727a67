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

Replicas (several ``vm serve`` on one database) share the work through leases
(``storage/leases.py``): every tick the loop claims a batch of hosts that are due and not held by
a live lease of another replica (one transaction), attests them, and completes them (due again one
interval after their claim, lease freed; one transaction per up to COMPLETE_BATCH hosts). A
replica that dies leaves the leases of a batch's attested but not yet completed hosts to expire:
they are attested again early, never late. So each host is attested once per interval by exactly one replica, and the
hosts of a replica that dies are claimed by another once its leases expire: a lease lasts half an
interval (``lease_seconds``), so a host is taken over within one interval. Batches are sized from
the time hosts took so far so that a batch finishes well inside its lease. An admin's round claims
the hosts it names (or every trusted host) the same way, leaving out those another replica holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from floodlight_trust import metrics
from floodlight_trust.clock import format_time
from floodlight_trust.errors import ConflictError, FtrustError, InputError
from floodlight_trust.logs import StateChangeLog
from floodlight_trust.manager.workflow import VerificationManager
from floodlight_trust.reasons import Reason, denial_summary
from floodlight_trust.storage.leases import LeaseStore, lease_store

log = logging.getLogger("floodlight_trust.manager.reattest")
# A host whose agent stays down fails every round: say so when it starts failing (or fails
# differently) and when it works again, not every round.
failures = StateChangeLog(log)

ACTOR = "reattest"
MAX_BATCH = 64  # hosts claimed at once (at most; see ReattestScheduler._batch_size)
COMPLETE_BATCH = 16  # attested hosts whose leases are completed in one transaction (at most)


def replica_id() -> str:
    """This process's name in the lease table: host name, process id and a random tag."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


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
    skipped: dict[str, str] = field(default_factory=dict)  # host -> why not attested here (another replica)

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
            "skipped": self.skipped,
        }


class ReattestScheduler:
    """Runs rounds on an interval in a daemon thread; :meth:`stop` ends it cleanly.

    ``interval_seconds`` <= 0 disables the loop (rounds still run on request). ``renew`` renews the
    certificates of the VNFs on each trusted host every round (short-lived certificates).
    ``leases`` (default: the lease table of the VM's database) is shared with the other replicas;
    ``owner`` names this replica in it.
    """

    def __init__(
        self,
        vm: VerificationManager,
        *,
        interval_seconds: float,
        renew: bool = True,
        leases: LeaseStore | None = None,
        owner: str | None = None,
        lease_seconds: float | None = None,
    ):
        self.vm = vm
        self.interval = float(interval_seconds)
        self.renew = renew
        self._leases = leases  # default: the lease table of the VM's database, opened on first use
        self.owner = owner or replica_id()
        self.lease = timedelta(seconds=lease_seconds if lease_seconds else max(self.interval / 2, 1.0))
        self.tick = min(max(self.interval / 10, 0.05), 1.0)  # how often the loop looks for due hosts
        self._host_seconds = 0.0  # moving average of one host's round (sizes the batches)
        self._synced_at: float | None = None  # when the lease table last got the trusted hosts (monotonic)
        self._round_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last: RoundReport | None = None

    @property
    def leases(self) -> LeaseStore:
        if self._leases is None:
            self._leases = lease_store(self.vm.storage)
        return self._leases

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> ReattestScheduler:
        if self.interval <= 0 or self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="reattest", daemon=True)
        self._thread.start()
        log.info("re-attesting every trusted host every %s s (replica %s)", self.interval, self.owner)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop; a round in progress finishes its current host first (no half decisions).
        The leases this replica still holds are freed, so the others need not wait for them."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        try:
            if self._leases is not None:
                self._leases.release(self.owner)
        except FtrustError as e:  # the database is gone: the leases expire by themselves
            log.warning("could not free the re-attestation leases of %s: %s", self.owner, e.message)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_due() is not None
            except Exception as e:  # the loop must outlive any one bad round (and a database outage)
                if isinstance(e, FtrustError):
                    failures.report("loop", e.message, "re-attestation round failed: %s", e.message)
                else:
                    log.exception("re-attestation round failed")
                worked = False
            else:
                failures.clear("loop", "re-attestation rounds work again")
            if not worked:
                self._stop.wait(self.tick)

    # -- rounds ----------------------------------------------------------------------------------
    def hosts_due(self) -> list[str]:
        """Hosts re-attested each round: every trusted host with a registered agent."""
        return [h.name for h in self.vm.storage.hosts.all() if h.agent_url and h.status == "trusted"]

    def _batch_size(self) -> int:
        # Half a lease's worth of hosts at the pace seen so far: a batch ends well before its lease.
        if self._host_seconds <= 0:
            return 1
        return max(1, min(MAX_BATCH, int(self.lease.total_seconds() / 2 / self._host_seconds)))

    def run_due(self) -> RoundReport | None:
        """Claim the hosts that are due (up to one batch) and attest them; None when none was due."""
        with self._round_lock:
            at = self.vm.now()
            # The trusted hosts are read (all of them) at most every few seconds, not every tick.
            if self._synced_at is None or time.monotonic() - self._synced_at >= min(self.interval, 5.0):
                self.leases.sync(self.hosts_due(), at=at, first_due=at + timedelta(seconds=self.interval))
                self._synced_at = time.monotonic()
            claimed = self.leases.claim_due(self.owner, at=at, until=at + self.lease, limit=self._batch_size())
            if not claimed:
                return None
            return self._round(claimed, at, {}, only_trusted=True)

    def run_round(self, hosts: list[str] | None = None) -> RoundReport:
        """One round now, over ``hosts`` (default :meth:`hosts_due`), whether due or not, leaving out
        the hosts another replica holds a lease on (``skipped``). Waits for a running round first."""
        with self._round_lock:
            at = self.vm.now()
            wanted = hosts if hosts is not None else self.hosts_due()
            claimed = self.leases.claim(self.owner, wanted, at=at, until=at + self.lease) if wanted else []
            held = set(claimed)
            skipped = {h: "another replica holds its lease" for h in wanted if h not in held}
            return self._round(claimed, at, skipped, explicit=hosts is not None)

    def _round(
        self,
        hosts: list[str],
        claimed_at: datetime,
        skipped: dict[str, str],
        *,
        explicit: bool = False,
        only_trusted: bool = False,
    ) -> RoundReport:
        started, t0 = self.vm.now(), time.perf_counter()
        results = []
        next_due = claimed_at + timedelta(seconds=self.interval)
        # Hosts attested whose leases are not yet completed: completed together, every
        # COMPLETE_BATCH hosts and at the end (one transaction, not one per host). A replica that
        # dies in between leaves those leases to expire: their hosts are attested again, early.
        attested: dict[str, datetime] = {}
        for host in hosts:
            if self._stop.is_set() and not explicit:
                self._complete(attested, next_due)
                self.leases.release(self.owner)  # stopping mid-batch: the rest go back to the others now
                break
            if only_trusted and not self._still_due(host):  # distrusted or removed since the last sync
                attested[host] = self.vm.now()
                skipped[host] = "no longer trusted"
                continue
            result = self._run_host_locked(host)
            results.append(result)
            average = self._host_seconds
            self._host_seconds = result.seconds if not average else 0.8 * average + 0.2 * result.seconds
            attested[host] = self.vm.now()
            if len(attested) >= COMPLETE_BATCH:
                self._complete(attested, next_due)
        self._complete(attested, next_due)
        self.rounds += 1
        report = RoundReport(self.rounds, started, results, time.perf_counter() - t0, skipped)
        metrics.REATTEST_ROUND_SECONDS.observe(report.seconds)
        self.last = report
        return report

    def _complete(self, attested: dict[str, datetime], next_due: datetime) -> None:
        """Complete the leases of ``attested`` (then cleared): due again at ``next_due``, freed."""
        if not attested:
            return
        done = self.leases.complete_many(self.owner, attested, next_due=next_due)
        for host in attested:
            if host not in done:
                log.warning("the lease on %s expired during its round: another replica may have attested it too", host)
        attested.clear()

    def _still_due(self, host: str) -> bool:
        record = self.vm.storage.hosts.find(host)
        return record is not None and bool(record.agent_url) and record.status == "trusted"

    def run_host(self, host: str) -> HostRound:
        """One round for one host now (any status: an admin may bring an untrusted host back)."""
        self.vm.storage.hosts.get(host)  # InputError for an unknown host
        report = self.run_round([host])
        if not report.hosts:
            raise ConflictError(f"host {host!r} is being re-attested by another replica", hint="try again shortly")
        return report.hosts[0]

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
            "replica": self.owner,
            "lease_seconds": self.lease.total_seconds(),
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
