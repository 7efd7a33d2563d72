"""An in-process gateway on the real PostgreSQL, with an in-process bus, driven through ASGI."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

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
async def api(gateway_settings: Settings, local_bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gateway_settings, bus=local_bus)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        assert gateway_settings.admin_key is not None
        headers = {"Authorization": f"Bearer {gateway_settings.admin_key.get_secret_value()}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://loopd.test", headers=headers
        ) as client:
            yield client
