"""Open event streams hold Redis connections of a pool of their own: however many a process has open,
its commands (wake-ups, publishes) still get a connection, and the bound on streams is explicit."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.core.bus.redis import RedisBus


async def test_subscriptions_never_take_the_connections_commands_need(redis_url: str) -> None:
    bus = RedisBus(redis_url, max_subscriptions=3)
    channel = f"test-{secrets.token_hex(4)}"
    try:
        async with AsyncExitStack() as streams:
            subscribed = [await streams.enter_async_context(bus.subscribe(channel)) for _ in range(3)]

            await bus.publish(channel, {"seq": 1})
            await bus.wake(f"run_{secrets.token_hex(4)}")
            for messages in subscribed:
                assert await anext(messages) == {"seq": 1}

            with pytest.raises(RedisConnectionError, match="Too many connections"):
                async with bus.subscribe(channel):
                    pass
    finally:
        await bus.aclose()


async def test_a_bus_failure_is_a_retryable_503_at_the_gateway() -> None:
    import httpx
    from fastapi import FastAPI

    from services.gateway.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/wake")
    async def wake() -> None:
        raise RedisConnectionError("Too many connections")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/wake")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "bus_unavailable"
    assert answer.headers["retry-after"] == "1"
