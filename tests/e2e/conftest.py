"""The end-to-end deployment: PostgreSQL, Redis, one gateway, two brains and two hands as separate
OS processes talking over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cluster import Cluster, running_cluster
from harness.servers import RedisServer
from services.local.postgres import EmbeddedPostgres

Deployment = Cluster


@pytest.fixture(scope="module")
def deployment(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("deployment")
    with running_cluster(root, database_url=postgres.url, bus_url=redis.url) as cluster:
        yield cluster
