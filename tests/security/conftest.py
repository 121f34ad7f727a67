"""The attack regression tests' VM: its certificates name the CRL and OCSP URLs it really serves
(tests/support/world.py builds it; tests/support/attacks.py measures what an attack changed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.world import World, free_port, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A VM whose certificates name the CRL and OCSP URLs it really serves."""
    yield from make_world(tmp_path_factory.mktemp("attack"), crl_port=free_port())


@pytest.fixture(scope="module")
def deployment(world: World) -> World:
    """The same running VM (the robustness tests' name for it)."""
    return world
