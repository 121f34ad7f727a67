"""Revocation: revoke a VNF's or a host's certificates in one transaction, then tell the listeners.

Listeners (the CRL publisher) run after commit, so the CRL is republished at once; a failed
republish is logged and never undoes a committed revocation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from floodlight_trust import metrics
from floodlight_trust.errors import FtrustError, InputError, NotFoundError
from floodlight_trust.manager.context import ManagerContext
from floodlight_trust.reasons import Reason
from floodlight_trust.storage.records import VnfStatus
from floodlight_trust.storage.stores import Transaction

log = logging.getLogger("floodlight_trust.manager")


class Revocation:
    def __init__(self, ctx: ManagerContext):
        self.ctx = ctx
        self.listeners: list[Callable[[list[str]], None]] = []

    def revoke_tx(
        self,
        tx: Transaction,
        *,
        host: str | None,
        vnf: str | None,
        reason: str,
        why: str,
        at: datetime,
        actor: str,
    ) -> list[str]:
        """Inside ``tx``: revoke every live certificate of ``vnf`` and/or ``host``, and audit it.

        A whole host (``vnf`` None) loses every certificate issued on its platform as well, under
        whatever host name it was issued: distrusting a machine distrusts all it ever enrolled."""
        from floodlight_trust.pki.records import parse_serial

        ctx = self.ctx
        serials = []
        platform = tx.hosts.platform_of(host) if (host is not None and vnf is None) else None
        for e in tx.enrollments.live(host=host, vnf=vnf, at=at, platform_key=platform):
            ctx.issuer.revoke(parse_serial(e.serial), reason, at=at, tx=tx)
            tx.enrollments.mark_revoked(e.serial, at=at, reason=why)
            tx.enrollments.record_vnf(
                e.host,
                e.vnf,
                status=VnfStatus.REVOKED,
                at=at,
                mrenclave=None,
                public_key_sha256=None,
                reasons=[Reason("revocation", why).to_json()],
            )
            serials.append(e.serial)
        if serials:
            metrics.REVOCATIONS.labels(cause=reason).inc(len(serials))
        tx.audit.record(
            at=at,
            actor=actor,
            action="revoke",
            allowed=True,
            host=host,
            vnf=vnf,
            policy_version=ctx.policy_version,
            evidence={"serials": serials, "crl_reason": reason, "platform": platform},
            reasons=[Reason("revocation", why).to_json()],
        )
        return serials

    def revoke(self, *, host: str | None = None, vnf: str | None = None, reason: str, actor: str) -> list[str]:
        """Revoke every active certificate of ``vnf`` (on ``host`` if given) or of every VNF on ``host``.

        Revoking a host also marks it untrusted until it is attested again. One transaction; the
        CRL is republished after commit. Returns the revoked serials.
        """
        if host is None and vnf is None:
            raise InputError("say which VNF or host to revoke")
        ctx = self.ctx
        at = ctx.now()
        if host is not None:
            ctx.storage.hosts.get(host)
        if vnf is not None and not ctx.storage.enrollments.vnf_known(vnf, host=host):
            where = f" on host {host!r}" if host else ""
            raise NotFoundError(
                f"unknown VNF {vnf!r}{where}: it was never registered or enrolled; nothing revoked",
                code="vnf.unknown",
                hint="see `ftrust vm vnfs list`",
            )
        with ctx.storage.transaction() as tx:
            serials = self.revoke_tx(
                tx,
                host=host,
                vnf=vnf,
                reason="cessationOfOperation" if vnf is None else "superseded",
                why=reason,
                at=at,
                actor=actor,
            )
            if host is not None and vnf is None:
                tx.hosts.mark_untrusted(
                    host, [Reason("revocation", f"revoked by {actor}: {reason}").to_json()]
                )
        self.notify(serials)
        return serials

    def revoke_batch(self, targets: Sequence[tuple[str, str | None, str]], *, crl_reason: str, actor: str) -> list[str]:
        """Revoke several ``(host, vnf or None, why)`` targets in ONE transaction, then republish once.

        A target without a VNF revokes every VNF of the host and marks the host untrusted with ``why``.
        Used by re-attestation rounds and ``reload-policy``. Returns the revoked serials.
        """
        ctx = self.ctx
        at = ctx.now()
        serials: list[str] = []
        with ctx.storage.transaction() as tx:
            for host, vnf, why in targets:
                serials += self.revoke_tx(tx, host=host, vnf=vnf, reason=crl_reason, why=why, at=at, actor=actor)
                if vnf is None:
                    tx.hosts.mark_untrusted(host, [Reason("revocation", why).to_json()])
        self.notify(serials)
        return serials

    def notify(self, serials: list[str]) -> None:
        """Tell the listeners about committed revocations (nothing when none)."""
        if not serials:
            return
        for listener in self.listeners:
            try:
                listener(serials)
            except FtrustError as e:  # a failed republish must not undo a committed revocation
                log.error("revocation listener failed: %s", e)
