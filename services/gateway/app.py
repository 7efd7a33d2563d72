"""Builds the gateway's FastAPI app; every resource is created in the lifespan, none at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.core.artifacts import build_artifact_store
from services.core.bus import Bus
from services.core.journal import Journal
from services.core.process import open_bus, open_engine
from services.core.settings import Settings
from services.gateway.anthropic.app import PREFIX as ANTHROPIC_PREFIX
from services.gateway.anthropic.app import create_anthropic_app
from services.gateway.body_limit import BodyLimitMiddleware
from services.gateway.bootstrap import ensure_root
from services.gateway.deps import GatewayServices
from services.gateway.errors import install_error_handlers
from services.gateway.key_gate import KeyGateMiddleware
from services.gateway.params import errors
from services.gateway.rate_limit import open_limiter
from services.gateway.request_metrics import RequestMetricsMiddleware
from services.gateway.routes import (
    agents,
    artifacts,
    audit,
    control,
    environments,
    events,
    history,
    keys,
    runs,
    secrets,
    system,
    tenants,
    usage,
)
from services.gateway.storable_input import StorableInputMiddleware


def create_app(settings: Settings, *, bus: Bus | None = None) -> FastAPI:
    """`bus` is passed in when several roles share one in-process bus (the embedded stack)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_engine(settings) as engine,
            open_bus(settings, bus) as active_bus,
            open_limiter(settings) as limiter,
        ):
            await ensure_root(settings, engine)
            app.state.services = GatewayServices(
                settings=settings,
                engine=engine,
                bus=active_bus,
                artifacts=build_artifact_store(settings),
                journal=Journal(engine, active_bus),
                limiter=limiter,
            )
            managed.state.services = app.state.services
            yield

    app = FastAPI(title="loopd", version="1", lifespan=lifespan)
    # The Managed Agents API, for the official SDK: Anthropic(base_url="http://HOST:PORT/anthropic").
    managed = create_anthropic_app()
    app.add_middleware(StorableInputMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body checks, so that a request without a usable key gets its 401 whatever its body.
    app.add_middleware(KeyGateMiddleware, answered_by={"/v1": app, ANTHROPIC_PREFIX: managed})
    # Outermost, so that requests the key gate and the body limit turn away are counted too.
    app.add_middleware(RequestMetricsMiddleware, routes=app.routes)
    install_error_handlers(app)
    routers = (
        agents,
        runs,
        control,
        history,
        events,
        artifacts,
        environments,
        secrets,
        keys,
        tenants,
        audit,
        usage,
    )
    for module in routers:
        # Every /v1 route needs a key and counts against the key's rate limit.
        app.include_router(module.router, responses=errors(401, 403, 429, 503))
    app.include_router(system.router)
    app.mount(ANTHROPIC_PREFIX, managed)
    return app
