"""Fault tests run against their own PostgreSQL and Redis, so both can be restarted."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.cluster import running_cluster
from harness.model_cluster import ModelCluster, assert_gapless
from harness.model_server import FakeModelServer
from harness.servers import RedisServer
from services.local.postgres import EmbeddedPostgres

FaultCluster = ModelCluster
__all__ = ["FaultCluster", "assert_gapless"]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with fault_cluster(tmp_path_factory.mktemp("faults")) as cluster:
        yield cluster


@contextmanager
def fault_cluster(root: Path, **settings: str) -> Iterator[FaultCluster]:
    """A cluster with its own PostgreSQL, Redis and model server; `settings` as in running_cluster."""
    pg_root = Path(tempfile.mkdtemp(prefix="loopd-faults-pg-"))
    pg_root.chmod(0o755)
    postgres = EmbeddedPostgres(pg_root / "data")
    postgres.start()
    redis = RedisServer()
    redis.start()
    model = FakeModelServer(by_turn=True)
    model.start()
    try:
        with running_cluster(
            root,
            database_url=postgres.url,
            bus_url=redis.url,
            brains=2,
            hands=2,
            LOOPD_OPENAI_BASE_URL=model.openai_base_url,
            LOOPD_OPENAI_API_KEY="test-key",
            LOOPD_LEASE_SECONDS="3",
            LOOPD_SWEEP_INTERVAL_SECONDS="1",
            **settings,
        ) as cluster:
            yield ModelCluster(cluster, postgres, redis, model)
    finally:
        model.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
