"""The in-process loop for the brain's tests: real PostgreSQL, in-process bus, gateway and hands."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from services.core.db.migrate import upgrade
from services.local.postgres import EmbeddedPostgres
from tests.unit.brain.loop import Loop


@pytest.fixture
async def loop(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with Loop(database_url, tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def module_database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database for one module's tests alone: for the sweeper, which looks at every run."""
    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER loopd')
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(postgres.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
