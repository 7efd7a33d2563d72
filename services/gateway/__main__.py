"""`python -m services.gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from services.core.heap import freeze_startup_heap
from services.core.settings import Settings
from services.gateway.app import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
