"""While PostgreSQL is down, the gateway says so with a 503 a client can retry, not a 500, and it
serves again once the database is back."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from harness.servers import postgres_server
from services.core.bus import build_bus
from services.core.db.migrate import upgrade
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app


async def test_a_database_outage_is_a_retryable_503(tmp_path: Path) -> None:
    key = mint()
    bus = build_bus("local://")
    with postgres_server() as postgres:
        upgrade(postgres.url)
        settings = Settings(
            database_url=postgres.url,
            bus_url="local://",
            artifacts_dir=tmp_path / "artifacts",
            tenant=f"tenant-{secrets.token_hex(4)}",
            admin_key=key,
            migrate_on_start=False,
        )
        app = create_app(settings, bus=bus)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as api:
                assert (await api.get("/v1/runs")).status_code == 200

                postgres.kill()
                down = await api.get("/v1/runs")
                assert down.status_code == 503, down.text
                assert down.json()["error"]["code"] == "database_unavailable"
                assert down.headers["retry-after"] == "1"

                postgres.start()
                assert (await api.get("/v1/runs")).status_code == 200
    await bus.aclose()
