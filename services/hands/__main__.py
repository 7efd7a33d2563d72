"""`python -m services.hands`: run one hands worker from the environment's Settings until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from services.core.artifacts import build_artifact_store
from services.core.bus import build_bus
from services.core.settings import Settings
from services.hands.server import HandsWorker


async def serve(settings: Settings) -> None:
    """Serve until a stop signal, then drain in-flight calls and unregister (HandsWorker's exit)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bus = build_bus(settings.bus_url)
    try:
        async with HandsWorker(settings, bus, build_artifact_store(settings.artifacts_path)) as worker:
            logging.getLogger("services.hands").info("hands %s ready at %s", worker.hands_id, worker.address)
            await stop.wait()
    finally:
        await bus.aclose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
