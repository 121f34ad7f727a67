"""Enrollment end to end with the VM's state on PostgreSQL (one database of the throwaway cluster):
the same tests as test_enrollment.py, imported here so they run against this module's world."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.manager.test_enrollment import (  # noqa: F401  # collected here too, on PostgreSQL
    test_clean_host_and_good_vnf_enroll_with_a_certificate_chaining_to_the_ca,
    test_expired_nonce_is_refused,
    test_fifty_concurrent_enrollments_get_fifty_serials_and_records,
    test_replayed_nonce_is_refused,
)
from tests.support.postgres import LocalCluster
from tests.support.world import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_cluster: LocalCluster) -> Iterator[World]:
    database = pg_cluster.create_migrated_database()
    try:
        w = make_world(tmp_path_factory.mktemp("vm-pg"), storage_url=pg_cluster.url(database))
        yield from w
    finally:
        pg_cluster.drop_database(database)


def test_the_world_runs_on_postgresql(world: World) -> None:
    from floodlight_trust.storage.postgres import PostgresStorage

    assert isinstance(world.service.vm.storage, PostgresStorage)
    assert not (world.tmp / "state" / "ftrust.sqlite3").exists()
