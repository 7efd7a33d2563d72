"""Typed dependencies for the routes: the process's shared services, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.artifacts import ArtifactStore
from services.core.bus import Bus
from services.core.journal import Journal
from services.core.settings import Settings


class RequestLimiter(Protocol):
    async def hit(self, key_id: str, *, writes: bool) -> None:
        """Counts one request of the key's; raises RateLimited when it is over its limit."""


@dataclass(frozen=True)
class GatewayServices:
    settings: Settings
    engine: AsyncEngine
    bus: Bus
    artifacts: ArtifactStore
    journal: Journal
    limiter: RequestLimiter | None = None


def get_services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


ServicesDep = Annotated[GatewayServices, Depends(get_services)]
