"""Applies the Alembic migrations; every process calls `upgrade` on start, unless a one-shot
`loopd-server migrate` does it for them (then `migrated` tells them when it has)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from sqlalchemy import create_engine, pool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(database_url))
    return config


def sync_url(database_url: str) -> str:
    """Alembic runs synchronously; psycopg 3 serves both modes under the same URL scheme."""
    return database_url.replace("postgresql+asyncpg://", "postgresql+psycopg://")


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)


def migrated(database_url: str) -> bool:
    """Whether the schema holds every migration this version of loopd ships. A revision this version
    does not know is a newer version's, which has applied this one's before it."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    if not current:
        return False
    try:
        applied = {r.revision for r in script.iterate_revisions(current, "base") if r is not None}
    except ResolutionError:
        return True
    return set(script.get_heads()) <= applied
