"""The gateway as a process (`loopd-server gateway`): the REST API under uvicorn, which drains on SIGTERM."""

from __future__ import annotations

import uvicorn

from services.core.heap import freeze_startup_heap
from services.core.process import configure_logging
from services.core.settings import Settings
from services.gateway.app import create_app


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure_logging()
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
