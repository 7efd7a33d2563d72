"""The /anthropic sub-application: the Managed Agents routes with the API's error envelope; anything
else under the prefix answers a clean 404 in that envelope, naming what is not served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from services.gateway.anthropic.errors import install_error_handlers
from services.gateway.anthropic.routes import agents, environments, events, history, sessions

PREFIX = "/anthropic"


def under_prefix(path: str) -> bool:
    """Whether a path is the view's, matched by the mount or not (its pattern stops at a line break)."""
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def create_anthropic_app() -> FastAPI:
    """Mounted at PREFIX by the gateway, which sets `state.services` in its lifespan."""
    app = FastAPI(title="loopd: Managed Agents API", version="1", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    for module in (agents, environments, sessions, events, history):
        app.include_router(module.router)
    app.openapi = _without_422(app)  # type: ignore[method-assign]
    return app


def _without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The app's OpenAPI document without FastAPI's 422s: invalid input is a 400 on this wire, and each
    operation documents it with the API's envelope."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            built = build()
            for operations in built.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                built.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or {}

    return document
