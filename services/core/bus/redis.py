"""Redis bus: a stream with a consumer group for wake-ups, pub/sub for fan-out, TTL keys for hands.

Wake-ups use XREADGROUP/XACK so a wake-up taken by a brain that dies is claimed again (XAUTOCLAIM)
once it has been pending for the visibility timeout. Every call is cancellable: see `_cancellable`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.core.bus import HandsInfo, WakeUp

WAKEUP_STREAM = "loopd:wakeups"
WAKEUP_GROUP = "brains"
HANDS_PREFIX = "loopd:hands:"
# How long a subscriber's read waits before it looks again whether it is still subscribed.
SUBSCRIBER_POLL_SECONDS = 1.0

T = TypeVar("T")


async def _cancellable(call: Awaitable[T]) -> T:
    """Await a redis-py call so that cancelling the caller always ends the caller.

    redis-py sends each command under asyncio.wait_for (its socket timeout), which on Python 3.11
    drops a cancellation that lands as the send completes: the command finishes and the cancelled
    caller carries on as if nothing had happened. A run's stop watcher did, and held its step, and so
    the run's lease, forever. Run as a task of its own behind a shield, the call may still finish in
    the background (a wake-up it took is delivered again after the visibility timeout), but the
    caller gets its CancelledError.
    """
    running = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        running.cancel()
        running.add_done_callback(_forget)
        raise


def _forget(task: asyncio.Future[Any]) -> None:
    """Nobody waits for an abandoned call any more; reading its outcome keeps asyncio from logging it."""
    if not task.cancelled():
        task.exception()


class RedisBus:
    def __init__(
        self, url: str, *, visibility_timeout: float = 30.0, max_subscriptions: int = 10_000
    ) -> None:
        self._visibility_ms = int(visibility_timeout * 1000)
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=10,
        )
        # Each live subscription (an open event stream) holds a connection for as long as it lasts:
        # they get a pool of their own, so a gateway full of streams still has connections for its
        # commands (a wake-up, a publish), and streams are bounded by `max_subscriptions` alone.
        self._subscriber: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, max_connections=max_subscriptions, health_check_interval=10
        )
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(WAKEUP_STREAM, WAKEUP_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def wake(self, run_id: str) -> None:
        await _cancellable(
            self._redis.xadd(WAKEUP_STREAM, {"run_id": run_id}, maxlen=100_000, approximate=True)
        )

    async def take(self, consumer: str, timeout: float) -> WakeUp | None:
        return await _cancellable(self._take(consumer, timeout))

    async def _take(self, consumer: str, timeout: float) -> WakeUp | None:
        await self._ensure_group()
        try:
            claimed = await self._redis.xautoclaim(
                WAKEUP_STREAM, WAKEUP_GROUP, consumer, min_idle_time=self._visibility_ms, count=1
            )
            entries: list[Any] = list(claimed[1])
            if not entries:
                response: Any = await self._redis.xreadgroup(
                    WAKEUP_GROUP, consumer, {WAKEUP_STREAM: ">"}, count=1, block=max(1, int(timeout * 1000))
                )
                entries = response[0][1] if response else []
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The stream was deleted (e.g. Redis restarted without persistence): recreate on next call.
            self._group_ready = False
            return None
        for delivery_id, fields in entries:
            if fields and "run_id" in fields:
                return WakeUp(run_id=fields["run_id"], delivery_id=delivery_id)
            await self._redis.xack(WAKEUP_STREAM, WAKEUP_GROUP, delivery_id)
        return None

    async def ack(self, wakeup: WakeUp) -> None:
        await _cancellable(self._ack(wakeup))

    async def _ack(self, wakeup: WakeUp) -> None:
        await self._redis.xack(WAKEUP_STREAM, WAKEUP_GROUP, wakeup.delivery_id)
        await self._redis.xdel(WAKEUP_STREAM, wakeup.delivery_id)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await _cancellable(self._redis.publish(channel, json.dumps(message, separators=(",", ":"))))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            # Reads are bounded, so a read left behind by a cancelled reader ends soon after the
            # subscription is closed instead of holding its connection.
            while pubsub.subscribed:
                raw = await _cancellable(pubsub.get_message(timeout=SUBSCRIBER_POLL_SECONDS))
                if raw is not None and raw.get("type") == "message":
                    yield json.loads(raw["data"])

        try:
            await _cancellable(pubsub.subscribe(channel))
            yield messages()
        finally:
            # Closing the connection ends the subscription on the server too.
            await _cancellable(pubsub.aclose())  # type: ignore[no-untyped-call]

    async def register_hands(self, info: HandsInfo, ttl: float) -> None:
        payload = asdict(info)
        await _cancellable(
            self._redis.set(HANDS_PREFIX + info.hands_id, json.dumps(payload), px=int(ttl * 1000))
        )

    async def unregister_hands(self, hands_id: str) -> None:
        await _cancellable(self._redis.delete(HANDS_PREFIX + hands_id))

    async def list_hands(self) -> list[HandsInfo]:
        return await _cancellable(self._list_hands())

    async def _list_hands(self) -> list[HandsInfo]:
        keys = [key async for key in self._redis.scan_iter(match=HANDS_PREFIX + "*", count=500)]
        if not keys:
            return []
        values = await self._redis.mget(keys)
        hands = []
        for value in values:
            if value is None:
                continue
            payload = json.loads(value)
            payload["sandboxes"] = tuple(payload.get("sandboxes", ()))
            hands.append(HandsInfo(**payload))
        return sorted(hands, key=lambda info: info.hands_id)

    async def ping(self) -> None:
        await _cancellable(self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._subscriber.aclose()
