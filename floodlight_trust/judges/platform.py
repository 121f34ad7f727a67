"""Platform checks: a host stays on the platform it was first trusted on, and a VNF enrolls only
from its host's platform. Otherwise a quote from another machine could stand in for the host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from floodlight_trust.claims import EnclaveClaims, EvidenceType
from floodlight_trust.reasons import Reason

if TYPE_CHECKING:
    from floodlight_trust.storage.records import HostRecord


def platform_key(claims: EnclaveClaims) -> str | None:
    """The one name of the machine that produced a quote: ``dcap-pck:<SHA-256 of the PCK leaf>`` for
    DCAP, ``epid:<group>:<pseudonym>`` for linkable EPID (``epid:<group>:`` when unlinkable: the group
    is all IAS tells, so every unlinkable member of a group counts as one platform). None when the
    evidence names no platform. A registered host holds at most one platform and a platform belongs
    to at most one registered host (``HostStore.platform_owner``)."""
    p = claims.platform
    if claims.evidence_type is EvidenceType.DCAP:
        return f"dcap-pck:{p.pck_certificate_sha256}" if p.pck_certificate_sha256 else None
    if claims.evidence_type is EvidenceType.IAS and p.epid_group_id:
        return f"epid:{p.epid_group_id}:{p.epid_pseudonym or ''}"
    return None


def platform_identity(claims: EnclaveClaims | None) -> dict[str, Any] | None:
    """The platform identity of verified claims, as recorded with a host and in audit evidence."""
    if claims is None:
        return None
    p = claims.platform
    return {k: getattr(p, k) for k in ("fmspc", "pce_id", "pck_certificate_sha256", "epid_group_id", "epid_pseudonym")}


def describe_platform(key: str) -> str:
    """A short human form of a :func:`platform_key` for reasons."""
    kind, _, rest = key.partition(":")
    if kind == "dcap-pck":
        return f"PCK {rest[:16]}..."
    gid, _, pseudonym = rest.partition(":")
    return f"EPID group {gid}" + (f" pseudonym {pseudonym[:16]}..." if pseudonym else " (unlinkable)")


def platform_in_use(name: str, key: str, owner: str) -> Reason:
    """The reason a host is refused on a platform another registered host holds (both names given)."""
    return Reason(
        "host.platform_in_use",
        f"this quote comes from platform {describe_platform(key)}, which belongs to registered host {owner!r}: "
        f"host {name!r} cannot be trusted on it (one platform, one host; `ftrust vm hosts remove {owner}` first "
        "if the machine really changed hands)",
        evidence={"host": name, "platform_owner": owner, "platform": key},
    )


def pinned_platform(record: HostRecord, claims: EnclaveClaims, *, require_linkable_epid: bool) -> list[Reason]:
    """A host stays on the platform of its first trusted quote: DCAP hosts on their PCK
    certificate, IAS (EPID) hosts on their EPID group (and, with ``vm.require_linkable_epid``,
    their pseudonym)."""
    name, kind = record.name, claims.evidence_type.value
    pinned_pck = record.platform_pck_sha256
    pinned_gid = (record.platform or {}).get("epid_group_id")
    if pinned_pck and claims.evidence_type is EvidenceType.DCAP:
        seen = claims.platform.pck_certificate_sha256
        if seen and pinned_pck != seen:
            return [
                Reason(
                    "protocol.platform",
                    f"host {name!r} is registered on platform PCK {pinned_pck[:16]}..., but this quote comes "
                    f"from PCK {seen[:16]}... (another machine)",
                    evidence={"registered": pinned_pck, "quote": seen},
                )
            ]
        return []
    if pinned_gid and claims.evidence_type is EvidenceType.IAS:
        gid = claims.platform.epid_group_id
        if gid != pinned_gid:
            return [
                Reason(
                    "protocol.platform",
                    f"host {name!r} is registered in EPID group {pinned_gid}, but this quote comes from EPID "
                    f"group {gid} (another machine)",
                    evidence={"registered_epid_group_id": pinned_gid, "quote_epid_group_id": gid},
                )
            ]
        pinned_ps = (record.platform or {}).get("epid_pseudonym")
        seen_ps = claims.platform.epid_pseudonym
        if require_linkable_epid and pinned_ps and seen_ps != pinned_ps:
            return [
                Reason(
                    "protocol.platform",
                    f"host {name!r} is registered with another EPID pseudonym than this quote's: another "
                    "machine of the same EPID group (vm.require_linkable_epid)",
                )
            ]
        return []
    if pinned_pck or pinned_gid:
        was = "DCAP" if pinned_pck else "IAS"
        return [
            Reason(
                "protocol.platform",
                f"host {name!r} is registered with {was} evidence, but this quote is {kind}: nothing ties it "
                "to the registered platform",
            )
        ]
    return []


def same_platform(record: HostRecord, claims: EnclaveClaims, *, require_linkable_epid: bool) -> list[Reason]:
    """A VNF quote must come from the platform of its host's trusted quote (same PCK certificate,
    or same EPID group and, with ``vm.require_linkable_epid``, the same pseudonym)."""
    host_platform = record.platform or {}
    host_type = "IAS" if host_platform.get("epid_group_id") else "DCAP"
    if claims.evidence_type is EvidenceType.IAS or host_type == "IAS":
        if claims.evidence_type is not EvidenceType.IAS or host_type != "IAS":
            return [
                Reason(
                    "protocol.platform",
                    f"the VNF quote ({claims.evidence_type.value}) and host {record.name!r}'s quote ({host_type}) "
                    "are different kinds of evidence: nothing ties them to one platform",
                )
            ]
        host_gid, vnf_gid = host_platform.get("epid_group_id"), claims.platform.epid_group_id
        if not vnf_gid or host_gid != vnf_gid:
            return [
                Reason(
                    "protocol.platform",
                    f"the VNF quote comes from EPID group {vnf_gid}, host {record.name!r}'s quote from EPID "
                    f"group {host_gid}: another platform",
                    evidence={"host_epid_group_id": host_gid, "vnf_epid_group_id": vnf_gid},
                )
            ]
        if require_linkable_epid:
            host_ps, vnf_ps = host_platform.get("epid_pseudonym"), claims.platform.epid_pseudonym
            if not host_ps or not vnf_ps:
                return [
                    Reason(
                        "protocol.platform",
                        "vm.require_linkable_epid: the VNF and host quotes must be linkable EPID quotes "
                        "(IAS returned no pseudonym)",
                    )
                ]
            if host_ps != vnf_ps:
                return [
                    Reason(
                        "protocol.platform",
                        f"the VNF quote's EPID pseudonym differs from host {record.name!r}'s: another platform "
                        "of the same EPID group",
                    )
                ]
        return []
    if claims.evidence_type is EvidenceType.DCAP:
        host_pck, vnf_pck = record.platform_pck_sha256, claims.platform.pck_certificate_sha256
        if not host_pck or not vnf_pck or host_pck != vnf_pck:
            return [
                Reason(
                    "protocol.platform",
                    f"the VNF quote comes from another platform than host {record.name!r}'s quote "
                    f"(PCK {str(vnf_pck)[:16]}... vs {str(host_pck)[:16]}...)",
                    evidence={"host_pck_sha256": host_pck, "vnf_pck_sha256": vnf_pck},
                )
            ]
    return []
