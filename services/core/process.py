"""The start-up every loopd process shares: logging, the event loop, the stop signals, and the database
engine and bus it serves with. The roles' `main` modules and `loopd-server` build on it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.bus import Bus, build_bus
from services.core.db.engine import create_engine
from services.core.db.migrate import upgrade_async
from services.core.settings import Settings

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO, *, timestamps: bool = True) -> None:
    fmt = LOG_FORMAT if timestamps else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt)


def run(main: Coroutine[Any, Any, T], *, fast_loop: bool = False) -> T:
    """Run `main` to its end on a new event loop; `fast_loop` picks uvloop (the brain's busy loop).

    The hands keep asyncio's own loop, which grpc.aio supports without caveats.
    """
    loop_factory = None
    if fast_loop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


def stop_requested() -> asyncio.Event:
    """An event the first SIGTERM or SIGINT sets; the caller drains its work and returns when it is set.

    Installed before anything starts, so a stop during start-up is not lost to the default handler.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


@asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The process's engine, after the migrations unless `migrate_on_start` is off; disposed at exit."""
    if settings.migrate_on_start:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_bus(settings: Settings, shared: Bus | None = None) -> AsyncIterator[Bus]:
    """The process's bus, closed at exit; a `shared` bus (one process, several roles) stays open."""
    if shared is not None:
        yield shared
        return
    bus = build_bus(
        settings.bus_url,
        visibility_timeout=settings.wake_visibility_seconds,
        max_subscriptions=settings.bus_max_subscriptions,
    )
    try:
        yield bus
    finally:
        await bus.aclose()
