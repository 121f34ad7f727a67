"""A nonce request's registration check (``Enrollment.require_known``: one read, no records built)
refuses exactly what the enrollment's full read (``Enrollment.registered_host_and_vnf``) refuses,
with the same typed error: unregistered hosts, unregistered VNF names, and names an opted-in
self-registering enroll rule admits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from floodlight_trust.errors import NotFoundError
from floodlight_trust.manager.enrollment import Enrollment
from floodlight_trust.manager.workflow import _no_nonce_for
from tests.support.world import World


def outcome(call: Callable[[], object]) -> tuple[str, str, str | None] | None:
    """None when ``call`` passes, else its NotFoundError's code, message and hint."""
    try:
        call()
    except NotFoundError as e:
        return e.code, e.message, e.hint
    return None


def agree(enrollment: Enrollment, host: str, vnf: str) -> tuple[str, str, str | None] | None:
    full = outcome(lambda: enrollment.registered_host_and_vnf(host, vnf, unregistered_host=_no_nonce_for))
    light = outcome(lambda: enrollment.require_known(host, vnf, unregistered_host=_no_nonce_for))
    assert light == full, (host, vnf)
    # (the default refusal, as enclave evidence for an unregistered host gets it, agrees too)
    assert outcome(lambda: enrollment.require_known(host, vnf)) == outcome(
        lambda: enrollment.registered_host_and_vnf(host, vnf)
    )
    return light


def test_the_light_check_refuses_what_the_full_read_refuses(world: World) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-known")
    other = world.start_host()
    other.add_vnf("vnf-fw-elsewhere")
    unregistered = world.unique("host-nowhere")
    enrollment = world.service.vm.enrollment
    assert agree(enrollment, host.name, "vnf-fw-known") is None
    assert agree(enrollment, host.name, "vnf-fw-elsewhere") == (
        "vnf.unregistered",
        f"VNF 'vnf-fw-elsewhere' is not registered on host {host.name!r}: nothing is enrolled or recorded",
        f"an admin registers it with `ftrust vm vnfs add {host.name} vnf-fw-elsewhere`",
    )
    assert agree(enrollment, host.name, "no-rule-admits-this")[0] == "vnf.unregistered"  # type: ignore[index]
    refused = agree(enrollment, unregistered, "vnf-fw-known")
    assert refused is not None and refused[:2] == (
        "host.unregistered",
        f"host {unregistered!r} is not registered: no nonce is issued for it",
    )
    assert outcome(lambda: enrollment.require_known(host.name, None)) is None
    assert outcome(lambda: enrollment.require_known(unregistered, None, unregistered_host=_no_nonce_for)) == refused
    # A self-registering rule admits an unregistered name it matches, on a registered host only.
    vm = world.service.vm
    vm.self_registering_rules = frozenset({"fw"})
    try:
        assert agree(enrollment, host.name, "vnf-fw-new") is None
        assert agree(enrollment, host.name, "no-rule-admits-this")[0] == "vnf.unregistered"  # type: ignore[index]
        assert agree(enrollment, unregistered, "vnf-fw-new") == refused
    finally:
        vm.self_registering_rules = frozenset()
    assert agree(enrollment, host.name, "vnf-fw-new")[0] == "vnf.unregistered"  # type: ignore[index]


def test_a_nonce_request_builds_no_host_record(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    host = world.start_host()
    host.add_vnf("vnf-fw-light")
    vm = world.service.vm

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a nonce request built a host record")

    monkeypatch.setattr(type(vm.storage.hosts), "find", refuse)
    monkeypatch.setattr(type(vm.storage.hosts), "find_with_vnf", refuse)
    for purpose, vnf in (("enclave", "vnf-fw-light"), ("enclave", None), ("host", None), ("host", "vnf-unregistered")):
        doc = vm.issue_nonce(purpose, host.name, vnf)  # (a host nonce names no VNF: the name is not checked)
        assert len(bytes.fromhex(doc["nonce"])) == 32 and doc["purpose"] == purpose
    with pytest.raises(NotFoundError) as e:
        vm.issue_nonce("enclave", host.name, "vnf-fw-unregistered")
    assert e.value.code == "vnf.unregistered"
    with pytest.raises(NotFoundError) as e:
        vm.issue_nonce("host", world.unique("host-nowhere"))
    assert e.value.code == "host.unregistered"
