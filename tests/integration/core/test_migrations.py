"""The Alembic migrations build the schema the code declares, and can be rolled back and reapplied; a
process applies them as it starts unless told not to, and `loopd-server migrate` applies them alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from services.core.db.migrate import downgrade, migrated, sync_url, upgrade
from services.core.db.schema import metadata
from services.core.process import open_engine
from services.core.settings import Settings


def table_names(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_declared_table_and_column(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    engine = create_engine(sync_url(fresh_database_url))
    try:
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    downgrade(fresh_database_url, "base")
    assert table_names(fresh_database_url) <= {"alembic_version"}
    upgrade(fresh_database_url)
    assert {"agents", "runs", "events", "run_leases"} <= table_names(fresh_database_url)


def test_upgrade_twice_is_a_no_op(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    upgrade(fresh_database_url)


def test_the_event_log_refuses_updates(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    dsn = sync_url(fresh_database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO runs (id, tenant_id, agent_spec, status, input) VALUES ('r1','t','{}','queued','x')"
        )
        conn.execute("INSERT INTO events (run_id, seq, type, data) VALUES ('r1', 1, 'run.created', '{}')")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE events SET type = 'forged' WHERE run_id = 'r1'")


async def test_a_process_migrates_as_it_starts_by_default(fresh_database_url: str) -> None:
    async with open_engine(Settings(database_url=fresh_database_url)):
        assert {"agents", "runs", "events", "run_leases"} <= table_names(fresh_database_url)


async def test_a_process_told_not_to_migrate_leaves_the_schema_alone(fresh_database_url: str) -> None:
    async with open_engine(Settings(database_url=fresh_database_url, migrate_on_start=False)):
        assert table_names(fresh_database_url) == set()


def test_loopd_server_migrate_applies_the_migrations_and_exits(fresh_database_url: str) -> None:
    env = {**os.environ, "LOOPD_DATABASE_URL": fresh_database_url}
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / "loopd-server"), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert {"agents", "runs", "events", "run_leases", "alembic_version"} <= table_names(fresh_database_url)


def test_migrated_says_whether_this_versions_migrations_are_applied(fresh_database_url: str) -> None:
    assert not migrated(fresh_database_url)
    upgrade(fresh_database_url, "0001")
    assert not migrated(fresh_database_url)
    upgrade(fresh_database_url)
    assert migrated(fresh_database_url)

    # A newer version's migration, which this version does not know, is past this version's.
    dsn = sync_url(fresh_database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_version'")
    assert migrated(fresh_database_url)


def test_wait_for_schema_waits_for_the_migration_and_gives_up_without_one(fresh_database_url: str) -> None:
    env = {**os.environ, "LOOPD_DATABASE_URL": fresh_database_url}
    command = [str(Path(sys.executable).parent / "loopd-server"), "wait-for-schema", "--timeout", "0"]
    given_up = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    upgrade(fresh_database_url)
    ready = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert given_up.returncode == 1 and "migrations not applied yet" in given_up.stderr
    assert ready.returncode == 0, ready.stderr
