"""The one versioned migration set of the state store, for every engine.

A step is named ``(component, version)``, as the ``schema_migrations`` table of every existing
database records it (older releases migrated each component on its own; those names are kept so
existing databases continue where they stopped). :data:`STEPS` is the order in which steps apply to
a new or an older database. Each engine module maps every step to its own DDL (SQLite:
``storage/sqlite.py`` ``DDL``); tests/storage/test_migrations.py checks that every engine covers
exactly these steps, so a new engine is one module and a new step is one entry here plus one DDL
per engine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """One schema change: applied once, in order, recorded in ``schema_migrations``."""

    component: str
    version: int
    purpose: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.component, self.version)


STEPS: tuple[Step, ...] = (
    Step("manager", 1, "hosts, VNFs, nonces, audit records and enrollments of the Verification Manager"),
    # Issue 8: renewals supersede a certificate (recorded, not revoked); the verified enclave claims
    # are kept so `ftrust vm reload-policy` can re-judge every enrollment under a new policy.
    Step("manager-lifecycle", 1, "superseded certificates and the enclave claims of each enrollment"),
    Step("manager-agent-tls", 1, "the pinned TLS certificate of a host's agent"),
    # Issue 11: hosts exist only by registration and each holds one platform (platform_checks.
    # platform_key); every certificate records the platform it was issued on, so distrusting a host
    # revokes whatever was issued on its machine, under any name. Re-pinning is an admin request.
    Step("manager-platforms", 1, "one platform per host; the platform of each certificate; re-pin requests"),
    # Issue 11: a VNF identity is a registration (host, name, enroll rule) by an admin, or by a
    # self-registering enroll rule; the name is bound to the enclave key and MRENCLAVE of its first
    # enrollment until an admin releases it. Rows of VNFs that only ever had denials are dropped
    # (anyone could create them before); enrolled ones are registered and bound to their enclave.
    Step("manager-vnf-registry", 1, "VNF registrations and the binding of a name to its first enclave"),
    Step("manager-tpm", 1, "hosts' registered TPMs: the pinned AK and the last verified round"),
    Step("pki", 1, "the VNF CA's issued certificates and revocations"),
    # Issue 11: admin client certificates come from a CA of their own (never trusted by Floodlight),
    # whose records live apart, so the VNF CA's CRL never lists them and the admin API can require one.
    Step("pki-admin", 1, "the admin CA's issued certificates and revocations"),
)
