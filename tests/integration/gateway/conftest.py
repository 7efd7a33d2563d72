"""An in-process gateway on the real PostgreSQL, with an in-process bus, driven through ASGI."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.core.bus import Bus, build_bus
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app


@pytest.fixture
async def local_bus() -> AsyncIterator[Bus]:
    bus = build_bus("local://")
    yield bus
    await bus.aclose()


@pytest.fixture
def gateway_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        bus_url="local://",
        artifacts_dir=tmp_path / "artifacts",
        tenant=f"tenant-{secrets.token_hex(4)}",
        max_body_bytes=64 * 1024,
        admin_key=mint(),
    )


@pytest.fixture
async def gateway_app(gateway_settings: Settings, local_bus: Bus) -> AsyncIterator[FastAPI]:
    """The gateway, started: its lifespan has run, so it serves requests through ASGI."""
    app = create_app(gateway_settings, bus=local_bus)
    assert gateway_settings.admin_key is not None
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: FastAPI, key: str | None = None, *, header: str = "authorization") -> httpx.AsyncClient:
    """A client of the in-process gateway that sends `key` (none if None) as `Authorization: Bearer`,
    or as `x-api-key` when `header` says so."""
    headers = {}
    if key is not None:
        headers = {"x-api-key": key} if header == "x-api-key" else {"Authorization": f"Bearer {key}"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://loopd.test", headers=headers)


@pytest.fixture
async def api(gateway_app: FastAPI, gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the root tenant's admin key (LOOPD_ADMIN_KEY)."""
    assert gateway_settings.admin_key is not None
    async with client_of(gateway_app, gateway_settings.admin_key.get_secret_value()) as client:
        yield client
