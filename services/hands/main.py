"""The hands as a process (`loopd-server hands`): one hands worker until SIGTERM, then drain.

Draining (the calls in flight finish, then the worker unregisters) is HandsWorker's exit.
"""

from __future__ import annotations

import logging

from services.core.artifacts import build_artifact_store
from services.core.metrics import listening
from services.core.process import configure_logging, open_bus, run, stop_requested
from services.core.settings import Settings
from services.hands.server import HandsWorker

logger = logging.getLogger("services.hands")


async def serve(settings: Settings) -> None:
    stop = stop_requested()
    artifacts = build_artifact_store(settings)
    with listening(settings, "hands"):
        async with open_bus(settings) as bus, HandsWorker(settings, bus, artifacts) as worker:
            logger.info("hands %s ready at %s", worker.hands_id, worker.address)
            await stop.wait()


def main(settings: Settings | None = None) -> None:
    configure_logging()
    run(serve(settings or Settings()))
