"""Per-key rate limits: past a bucket's limit a key gets 429 rate_limited with Retry-After, while other
keys and the key's other bucket go on; in memory for the embedded stack, and in Redis shared by every
gateway replica."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from harness.processes import ProcessGroup
from harness.servers import RedisServer
from harness.waiting import eventually, eventually_sync
from services.core.bus import Bus
from services.core.errors import RateLimited
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app
from services.gateway.rate_limit import open_limiter
from services.local.postgres import free_port


@asynccontextmanager
async def gateway(settings: Settings, bus: Bus, **limits: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process gateway with these limits (a local:// bus, so its limiter keeps counts in memory)."""
    app = create_app(settings.model_copy(update=limits), bus=bus)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://loopd.test") as client:
            yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin(settings: Settings) -> dict[str, str]:
    assert settings.admin_key is not None
    return auth(settings.admin_key.get_secret_value())


def assert_rate_limited(response: httpx.Response, *, window_seconds: float) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


async def new_key(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    created = await api.post(
        "/v1/keys", json={"name": f"k-{secrets.token_hex(3)}", "role": "admin"}, headers=headers
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def test_a_burst_of_writes_past_the_limit_is_refused_and_other_keys_are_not_slowed(
    gateway_settings: Settings, local_bus: Bus
) -> None:
    async with gateway(gateway_settings, local_bus, rate_limit_writes="3/minute") as api:
        first = admin(gateway_settings)
        other = auth(await new_key(api, first))
        assert [
            (await api.post("/v1/keys", json={"name": "k"}, headers=first)).status_code for _ in range(2)
        ] == [
            201,
            201,
        ]

        refused = await api.post("/v1/keys", json={"name": "k"}, headers=first)

        assert_rate_limited(refused, window_seconds=60)
        assert "writes" in refused.json()["error"]["message"]
        # Reads are a bucket of their own, and another key has its own buckets.
        assert (await api.get("/v1/keys", headers=first)).status_code == 200
        for _ in range(3):
            assert (await api.post("/v1/keys", json={"name": "k"}, headers=other)).status_code == 201
        # A refused request is not counted, so the first key is refused for the same window, not longer.
        assert_rate_limited(await api.post("/v1/keys", json={"name": "k"}, headers=first), window_seconds=60)


async def test_reads_have_their_own_limit(gateway_settings: Settings, local_bus: Bus) -> None:
    async with gateway(gateway_settings, local_bus, rate_limit_reads="4/minute", rate_limit_writes="") as api:
        key = admin(gateway_settings)
        assert [(await api.get("/v1/keys", headers=key)).status_code for _ in range(4)] == [200] * 4

        assert_rate_limited(await api.get("/v1/keys", headers=key), window_seconds=60)
        assert_rate_limited(await api.get("/v1/runs", headers=key), window_seconds=60)
        # Writes are unlimited here, and do not count against the reads.
        assert (await api.post("/v1/keys", json={"name": "k"}, headers=key)).status_code == 201
        # Requests without a key are refused before they could count against anyone's limit.
        assert (await api.get("/v1/keys")).status_code == 401


async def test_a_refused_key_gets_through_again_once_its_window_has_moved_on(
    gateway_settings: Settings, local_bus: Bus
) -> None:
    async with gateway(gateway_settings, local_bus, rate_limit_reads="2/2 seconds") as api:
        key = admin(gateway_settings)
        for _ in range(2):
            assert (await api.get("/v1/keys", headers=key)).status_code == 200
        assert_rate_limited(await api.get("/v1/keys", headers=key), window_seconds=2)

        async def admitted() -> bool:
            return (await api.get("/v1/keys", headers=key)).status_code == 200

        await eventually(admitted, timeout=10, interval=0.1)


async def test_turned_off_there_is_no_limiter_at_all(gateway_settings: Settings) -> None:
    off = gateway_settings.model_copy(update={"rate_limit_reads": "", "rate_limit_writes": ""})
    async with open_limiter(off) as limiter:
        assert limiter is None


async def test_while_redis_is_out_of_reach_requests_go_on_and_one_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on this port: every limiter call fails to connect at once.
    settings = Settings(bus_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_reads="1/minute")
    async with open_limiter(settings) as limiter:
        assert limiter is not None
        with caplog.at_level(logging.WARNING, logger="services.gateway.rate_limit"):
            for _ in range(3):
                await limiter.hit("key_unlimited", writes=False)
    assert len([r for r in caplog.records if "rate limits are off" in r.message]) == 1


async def test_the_redis_limiter_counts_each_key_and_bucket_apart(redis: RedisServer) -> None:
    settings = Settings(bus_url=redis.url, rate_limit_reads="2/minute", rate_limit_writes="1/minute")
    key = f"key_{secrets.token_hex(6)}"
    async with open_limiter(settings) as limiter:
        assert limiter is not None
        await limiter.hit(key, writes=False)
        await limiter.hit(key, writes=False)
        await limiter.hit(key, writes=True)
        with pytest.raises(RateLimited) as refused:
            await limiter.hit(key, writes=False)
        assert 0 < refused.value.retry_after <= 60
        with pytest.raises(RateLimited):
            await limiter.hit(key, writes=True)
        await limiter.hit(f"{key}_other", writes=False)


@pytest.fixture
def two_gateways(
    database_url: str, redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Two gateway processes on one PostgreSQL and one Redis, as replicas behind a load balancer are."""
    admin_key = mint()
    env = {
        "LOOPD_ADMIN_KEY": admin_key,
        "LOOPD_DATABASE_URL": database_url,
        "LOOPD_MIGRATE_ON_START": "false",
        "LOOPD_BUS_URL": redis.url,
        "LOOPD_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "LOOPD_TENANT": f"t-{secrets.token_hex(4)}",
        "LOOPD_RATE_LIMIT_READS": "4/minute",
        "LOOPD_RATE_LIMIT_WRITES": "100/minute",
    }
    group = ProcessGroup(tmp_path, env)
    urls = []
    try:
        for name in ("gateway-a", "gateway-b"):
            port = free_port()
            group.start(name, "services.gateway", LOOPD_PORT=str(port))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:

            def healthy(url: str = url) -> bool:
                try:
                    return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            eventually_sync(healthy, timeout=60, interval=0.2)
        yield urls, auth(admin_key)
    finally:
        group.stop_all()


def test_gateway_replicas_share_one_bucket_per_key_in_redis(
    two_gateways: tuple[list[str], dict[str, str]],
) -> None:
    (a, b), key = two_gateways
    created = httpx.post(f"{a}/v1/keys", json={"name": "other", "role": "admin"}, headers=key, timeout=10)
    assert created.status_code == 201, created.text
    other = auth(created.json()["key"])

    # Each replica alone would allow 4 reads; between them they allow 4 in all.
    for url in (a, b, a, b):
        assert httpx.get(f"{url}/v1/keys", headers=key, timeout=10).status_code == 200
    for url in (a, b):
        assert_rate_limited(httpx.get(f"{url}/v1/keys", headers=key, timeout=10), window_seconds=60)

    assert httpx.get(f"{b}/v1/keys", headers=other, timeout=10).status_code == 200
