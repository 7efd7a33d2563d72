"""The bus boundary: run wake-ups (a queue with acknowledgements), live event fan-out, and the hands registry.

The bus only ever saves latency: losing a message may delay a run, never lose work, because PostgreSQL
holds the truth and the brain's sweeper re-wakes runs whose lease has lapsed.
Backends: redis.py for deployments, local.py for the single-process embedded stack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class WakeUp:
    """One delivery of a run wake-up; ack it after the work it triggered is committed."""

    run_id: str
    delivery_id: str


@dataclass(frozen=True)
class HandsInfo:
    """What a hands worker advertises in the registry on every heartbeat."""

    hands_id: str
    address: str
    slots_total: int
    slots_free: int
    sandboxes: tuple[str, ...] = ()
    started_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        """A stopping worker stays listed while it finishes its calls, but takes no new ones."""
        return self.labels.get("state") == "draining"


class Bus(Protocol):
    async def wake(self, run_id: str) -> None:
        """Queue a wake-up for a run. Duplicate wake-ups are harmless."""
        ...

    async def take(self, consumer: str, timeout: float) -> WakeUp | None:
        """Take the next wake-up, or None after `timeout` seconds.

        A wake-up that is taken and not acked within the visibility timeout is delivered again.
        """
        ...

    async def ack(self, wakeup: WakeUp) -> None: ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Fan a message out to the live subscribers of `channel` (at most once, best effort)."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """Subscribe to `channel`; the subscription is live once the context is entered."""
        ...

    async def register_hands(self, info: HandsInfo, ttl: float) -> None:
        """Register or refresh a hands worker; it vanishes if not refreshed within `ttl` seconds."""
        ...

    async def unregister_hands(self, hands_id: str) -> None: ...

    async def list_hands(self) -> list[HandsInfo]: ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""
        ...

    async def aclose(self) -> None: ...


def run_channel(run_id: str) -> str:
    """The fan-out channel carrying a run's committed events."""
    return f"run:{run_id}"


def build_bus(url: str, *, visibility_timeout: float = 30.0, max_subscriptions: int = 10_000) -> Bus:
    """Pick the backend from the URL scheme: redis:// or local://."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from services.core.bus.redis import RedisBus

        return RedisBus(url, visibility_timeout=visibility_timeout, max_subscriptions=max_subscriptions)
    if url.startswith("local://"):
        from services.core.bus.local import LocalBus

        return LocalBus(visibility_timeout=visibility_timeout)
    raise ValueError(f"unsupported bus URL {url!r}: use redis://HOST:PORT/DB or local://")
