"""The /anthropic sub-application: the Managed Agents routes with the API's error envelope; anything
else under the prefix answers a clean 404 in that envelope, naming what is not served."""

from __future__ import annotations

from fastapi import FastAPI

from services.gateway.anthropic.errors import install_error_handlers
from services.gateway.anthropic.routes import agents, environments, events, history, sessions

PREFIX = "/anthropic"


def create_anthropic_app() -> FastAPI:
    """Mounted at PREFIX by the gateway, which sets `state.services` in its lifespan."""
    app = FastAPI(title="loopd: Managed Agents API", version="1", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    for module in (agents, environments, sessions, events, history):
        app.include_router(module.router)
    return app
