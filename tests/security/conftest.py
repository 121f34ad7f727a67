"""The attack regression tests' VM: its certificates name the CRL and OCSP URLs it really serves
(tests/support/world.py builds it; tests/support/attacks.py measures what an attack changed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.attacks import count, crl_serials, ocsp_status, post, table_sizes, unauthenticated_rejects
from tests.support.cli import ftrust
from tests.support.world import World, ca_cli, free_port, make_world, start_tls_agent, vm_cli, write_config

# The names below moved to tests/support/; they stay importable from here for the branches in flight
# this session only (import them from tests.support.attacks, .cli and .world).
__all__ = [
    "ca_cli",
    "count",
    "crl_serials",
    "ftrust",
    "ocsp_status",
    "post",
    "start_tls_agent",
    "table_sizes",
    "unauthenticated_rejects",
    "vm_cli",
    "write_config",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A VM whose certificates name the CRL and OCSP URLs it really serves."""
    yield from make_world(tmp_path_factory.mktemp("attack"), crl_port=free_port())


@pytest.fixture(scope="module")
def deployment(world: World) -> World:
    """The same running VM (the robustness tests' name for it)."""
    return world
