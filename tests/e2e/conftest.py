"""A whole loopd deployment as separate OS processes on loopback: PostgreSQL, Redis, one gateway,
two brains and two hands, all talking over real sockets."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.local.postgres import EmbeddedPostgres, free_port
from tests.support.processes import ProcessGroup
from tests.support.servers import RedisServer
from tests.support.waiting import eventually_sync


@dataclass
class Deployment:
    url: str
    processes: ProcessGroup
    artifacts_dir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture(scope="module")
def deployment(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deployment")
    port = free_port()
    env = {
        "LOOPD_DATABASE_URL": postgres.url,
        "LOOPD_BUS_URL": redis.url,
        "LOOPD_ARTIFACTS_DIR": str(root / "artifacts"),
        "LOOPD_TENANT": f"e2e-{secrets.token_hex(4)}",
        "LOOPD_PORT": str(port),
        "LOOPD_LEASE_SECONDS": "5",
        "LOOPD_SWEEP_INTERVAL_SECONDS": "2",
        "LOOPD_WAKE_VISIBILITY_SECONDS": "10",
    }
    group = ProcessGroup(root, env)
    group.start("gateway", "services.gateway")
    for n in (1, 2):
        group.start(f"brain-{n}", "services.brain", LOOPD_BRAIN_ID=f"brain-{n}-{secrets.token_hex(3)}")
        group.start(f"hands-{n}", "services.hands", LOOPD_HANDS_ID=f"hands-{n}-{secrets.token_hex(3)}")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and len(httpx.get(f"{url}/v1/hands").json()["data"]) == 2

    try:
        eventually_sync(ready, timeout=60, interval=0.2)
    except AssertionError:
        logs = group.logs()
        group.stop_all()
        raise AssertionError(f"the deployment did not become ready:\n{logs}") from None
    yield Deployment(url, group, root / "artifacts")
    group.stop_all()
