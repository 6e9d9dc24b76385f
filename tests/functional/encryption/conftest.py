"""One database per module for the blob-store tests: each test makes practices of
its own, so they need no fresh clone each (cloning dominates their run time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import Cluster

from perpetua.db.target import DatabaseTarget


@pytest.fixture(scope="module")
def blob_target(cluster: Cluster) -> Iterator[DatabaseTarget]:
    name = cluster.clone()
    yield cluster.target(name)
    cluster.drop(name)
