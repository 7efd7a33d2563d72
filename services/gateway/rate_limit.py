"""Per-API-key request rate limits: each key's reads and writes are counted in moving windows of their
own by the limits library, in Redis where the bus is Redis (so every gateway replica shares one
count) and in memory for the embedded local stack. auth.identify() calls `hit` on every request under
/v1 and /anthropic, before its body is read.

A moving window is exact: a refused request is not counted, and Retry-After is when the oldest
counted request leaves the window, so a client that waits that long gets through.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from services.core.errors import RateLimited
from services.core.settings import Settings

logger = logging.getLogger(__name__)

Bucket = Literal["reads", "writes"]
KEY_PREFIX = "loopd:ratelimit"
# A limiter call is one short script on Redis; past this the request goes on unlimited (see `hit`)
# rather than waiting on a stuck Redis.
REDIS_TIMEOUT_SECONDS = 1.0


class KeyRateLimiter:
    """Counts one request against its key's reads or writes bucket; raises RateLimited past a limit."""

    def __init__(self, storage: Storage, *, reads: Sequence[RateLimitItem], writes: Sequence[RateLimitItem]):
        self._strategy = MovingWindowRateLimiter(storage)
        self._limits: dict[Bucket, Sequence[RateLimitItem]] = {"reads": reads, "writes": writes}
        self._storage_failing = False

    async def hit(self, key_id: str, *, writes: bool) -> None:
        bucket: Bucket = "writes" if writes else "reads"
        for item in self._limits[bucket]:
            try:
                if await self._strategy.hit(item, bucket, key_id):
                    continue
                stats = await self._strategy.get_window_stats(item, bucket, key_id)
            except StorageError as error:
                # The limit protects the deployment, it is not what the request is for: while its
                # store is out of reach, requests go on unlimited rather than all failing.
                self._note_failure(error)
                return
            retry_after = max(0.0, stats.reset_time - time.time())
            raise RateLimited(
                f"this API key sent more {bucket} than its limit of {item}; "
                f"try again in {max(1, math.ceil(retry_after))}s",
                retry_after=retry_after,
            )
        if self._storage_failing:
            self._storage_failing = False
            logger.info("rate limits apply again: their store answers")

    def _note_failure(self, error: StorageError) -> None:
        if not self._storage_failing:
            self._storage_failing = True
            logger.warning("rate limits are off until their store answers again: %s", error.storage_error)


def parse_limits(text: str) -> list[RateLimitItem]:
    """A settings value ("600/minute", "10/second;600/minute") as limits; empty is none."""
    return parse_many(text) if text.strip() else []


@asynccontextmanager
async def open_limiter(settings: Settings) -> AsyncIterator[KeyRateLimiter | None]:
    """The gateway's limiter, its store closed at exit; None when both buckets are turned off."""
    reads, writes = parse_limits(settings.rate_limit_reads), parse_limits(settings.rate_limit_writes)
    if not reads and not writes:
        yield None
    elif settings.bus_url.startswith("local://"):
        memory = MemoryStorage()
        try:
            yield KeyRateLimiter(memory, reads=reads, writes=writes)
        finally:
            if memory.timer is not None:
                memory.timer.cancel()
    else:
        async with _redis_storage(settings.bus_url) as redis:
            yield KeyRateLimiter(redis, reads=reads, writes=writes)


@asynccontextmanager
async def _redis_storage(bus_url: str) -> AsyncIterator[RedisStorage]:
    """The limits store on the bus's Redis, through redis-py (which the bus uses already) on a
    connection pool of our own, so that closing it closes every connection the store opened."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = ConnectionPool.from_url(
        bus_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        # Once more at once, for a pooled connection that a Redis restart has closed.
        retry=Retry(NoBackoff(), retries=1),
    )
    scheme, _, rest = bus_url.partition("://")
    # The limits library names the schemes async+redis://, async+rediss:// and async+redis+unix://.
    uri = f"async+{'redis+unix' if scheme == 'unix' else scheme}://{rest}"
    try:
        yield RedisStorage(
            uri,
            implementation="redispy",
            # limits documents this option but types its options as scalars only.
            connection_pool=pool,  # type: ignore[arg-type]
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
        )
    finally:
        await pool.aclose()
