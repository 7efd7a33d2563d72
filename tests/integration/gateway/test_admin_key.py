"""LOOPD_ADMIN_KEY: stored once however many gateways start with it at once, usable as it is written
in a file (with its newline), and refused at start, without being echoed, when it is not a key."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import keys
from services.core.db.schema import api_keys, audit_log
from services.core.settings import Settings
from services.gateway.app import create_app
from services.gateway.bootstrap import ensure_root
from tests.integration.gateway.conftest import client_of


async def _stored(engine: AsyncEngine, key: str) -> tuple[int, int]:
    """Rows of the key, and audit entries of its making."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(func.count()).where(api_keys.c.key_hash == keys.hash_key(key)))
        ).scalar()
        made = (
            await conn.execute(
                select(func.count()).where(
                    audit_log.c.action == "key.created", audit_log.c.object_id == keys.configured_key_id(key)
                )
            )
        ).scalar()
    return int(rows or 0), int(made or 0)


async def test_gateways_starting_at_once_store_the_admin_key_once(
    database_url: str, engine: AsyncEngine
) -> None:
    key = keys.mint()
    settings = Settings(database_url=database_url, tenant=f"t-{secrets.token_hex(4)}", admin_key=key)
    # As many as the engine's pool holds: each start is its own transaction, all racing.
    await asyncio.gather(*(ensure_root(settings, engine) for _ in range(5)))
    await ensure_root(settings, engine)  # and a restart
    assert await _stored(engine, key) == (1, 1)


async def test_a_revoked_admin_key_stays_revoked_across_restarts(
    database_url: str, engine: AsyncEngine
) -> None:
    key = keys.mint()
    settings = Settings(database_url=database_url, tenant=f"t-{secrets.token_hex(4)}", admin_key=key)
    await ensure_root(settings, engine)
    async with engine.begin() as conn:
        await keys.revoke(conn, settings.tenant, keys.configured_key_id(key))
    await ensure_root(settings, engine)
    async with engine.connect() as conn:
        record = await keys.find_by_key(conn, key)
    assert record is not None and record.refusal(datetime.now(UTC)) == "api_key_revoked"
    assert await _stored(engine, key) == (1, 1)


async def test_an_admin_key_read_from_a_file_keeps_working(database_url: str, tmp_path: Path) -> None:
    key = keys.mint()
    settings = Settings(
        database_url=database_url,
        bus_url="local://",
        artifacts_dir=tmp_path / "artifacts",
        migrate_on_start=False,
        tenant=f"t-{secrets.token_hex(4)}",
        admin_key=f"{key}\n",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_of(app, key) as admin:
        assert (await admin.get("/v1/keys")).status_code == 200


@pytest.mark.parametrize("wrong", ["hunter2", "lk_short", "lk_with a space inside", "lk_" + "x" * 200])
def test_an_admin_key_that_is_not_a_key_is_refused_at_start_without_being_shown(wrong: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(admin_key=wrong)
    assert "admin_key" in str(refused.value) and wrong not in str(refused.value)
    assert all(wrong not in str(error) for error in refused.value.errors(include_input=False))


def test_a_minted_key_is_a_valid_admin_key() -> None:
    key = keys.mint()
    settings = Settings(admin_key=key)
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == key
    assert keys.looks_like_key(key)


async def test_the_admin_key_reaches_the_api_at_once(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/v1/keys")).json()["data"]
    assert [k["name"] for k in listed] == ["LOOPD_ADMIN_KEY"]
    assert listed[0]["role"] == "admin" and "key" not in listed[0]
