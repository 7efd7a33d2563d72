"""The brain as a process (`loopd-server brain`): one brain worker until SIGTERM, then drain."""

from __future__ import annotations

import asyncio

from services.brain.diagnostics import install_task_dump
from services.brain.worker import BrainWorker
from services.core.artifacts import build_artifact_store
from services.core.heap import freeze_startup_heap
from services.core.metrics import listening
from services.core.process import configure_logging, open_bus, open_engine, run, stop_requested
from services.core.settings import Settings


async def serve(settings: Settings) -> None:
    stop = stop_requested()
    install_task_dump(asyncio.get_running_loop())
    artifacts = build_artifact_store(settings)
    with listening(settings, "brain"):
        async with (
            open_engine(settings) as engine,
            open_bus(settings) as bus,
            BrainWorker(settings, engine, bus, artifacts),
        ):
            freeze_startup_heap()
            await stop.wait()


def main(settings: Settings | None = None) -> None:
    configure_logging()
    run(serve(settings or Settings()), fast_loop=True)
