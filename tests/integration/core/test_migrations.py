"""The Alembic migrations build the schema the code declares, and can be rolled back and reapplied."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from services.core.db.migrate import downgrade, sync_url, upgrade
from services.core.db.schema import metadata


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
