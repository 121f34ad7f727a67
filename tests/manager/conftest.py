"""The ``world`` fixture of the VM tests: a deployment on loopback (tests/support/world.py), one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.world import (
    ADMIN_KEY_PASSWORD,
    GOOD_IMAGE,
    HOST_FILES,
    INTEGRITY_IMAGE,
    PASSWORD,
    Host,
    World,
    ima_list,
    init_test_ca,
    make_world,
    policy_text,
)

# The names below moved to tests/support/world.py; they stay importable from here for the branches
# in flight this session only (import them from tests.support.world).
__all__ = [
    "ADMIN_KEY_PASSWORD",
    "GOOD_IMAGE",
    "HOST_FILES",
    "INTEGRITY_IMAGE",
    "PASSWORD",
    "Host",
    "World",
    "ima_list",
    "init_test_ca",
    "make_world",
    "policy_text",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("vm"))
