"""`python -m services.brain`: run one brain worker until SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from services.brain.diagnostics import install_task_dump
from services.brain.worker import BrainWorker
from services.core.artifacts import build_artifact_store
from services.core.bus import build_bus
from services.core.db.engine import create_engine
from services.core.db.migrate import upgrade_async
from services.core.heap import freeze_startup_heap
from services.core.metrics import listening
from services.core.settings import Settings


async def serve(settings: Settings) -> None:
    await upgrade_async(settings.database_url)
    engine = create_engine(settings)
    bus = build_bus(settings.bus_url, visibility_timeout=settings.wake_visibility_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    install_task_dump(loop)
    try:
        with listening(settings, "brain"):
            async with BrainWorker(settings, engine, bus, build_artifact_store(settings.artifacts_path)):
                freeze_startup_heap()
                await stop.wait()
    finally:
        await bus.aclose()
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(Settings()))


if __name__ == "__main__":
    main()
