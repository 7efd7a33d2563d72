"""The embedded PostgreSQL of `make run`/`make up` starts, restarts on its data, takes over from a
server that a killed stack left running, and gives up a port taken before it could bind it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.servers import server_root
from services.local import postgres
from services.local.postgres import EmbeddedPostgres


@pytest.fixture
def data_root() -> Iterator[Path]:
    with server_root("loopd-local-pg-") as root:
        yield root


def query_one(server: EmbeddedPostgres, *statements: str) -> object:
    """Run the statements in order; the first column of the last one's first row."""
    dsn = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        for sql in statements[:-1]:
            conn.execute(sql)
        row = conn.execute(statements[-1]).fetchone()
    return row[0] if row else None


def test_data_survives_a_restart(data_root: Path) -> None:
    server = EmbeddedPostgres(data_root / "data")
    server.start()
    try:
        assert query_one(server, "CREATE TABLE kept AS SELECT 42 AS answer", "SELECT count(*) FROM kept") == 1
    finally:
        server.stop()
    again = EmbeddedPostgres(data_root / "data")
    again.start()
    try:
        assert query_one(again, "SELECT answer FROM kept") == 42
    finally:
        again.stop()


def test_a_server_left_running_by_a_killed_stack_is_replaced(data_root: Path) -> None:
    left_behind = EmbeddedPostgres(data_root / "data")
    left_behind.start()  # never stopped: as if its supervisor had been killed
    fresh = EmbeddedPostgres(data_root / "data")
    try:
        fresh.start()
        assert query_one(fresh, "SELECT 1") == 1
        assert left_behind._process is not None and left_behind._process.poll() is not None
    finally:
        fresh.stop()
        left_behind.stop()


def test_a_port_taken_before_the_server_binds_it_is_given_up_for_another(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        pick = postgres.free_port
        picks = iter([busy])  # the first pick is taken by someone else before the server binds it
        monkeypatch.setattr(postgres, "free_port", lambda: next(picks, None) or pick())
        server = EmbeddedPostgres(data_root / "data")
        assert server.port == busy
        server.start()
        try:
            assert server.port != busy
            assert query_one(server, "SELECT 1") == 1
        finally:
            server.stop()


def test_loopd_connects_as_a_role_that_is_no_superuser_with_a_random_password(data_root: Path) -> None:
    server = EmbeddedPostgres(data_root / "data")
    server.start()
    try:
        assert query_one(server, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        assert query_one(server, "SELECT current_user") == "loopd"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={server.port} user=loopd password=loopd dbname=loopd")
        for name in ("data.password", "data.admin"):
            assert (data_root / name).stat().st_mode & 0o077 == 0
        with psycopg.connect(server.admin_dsn()) as admin:
            row = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (True,)
    finally:
        server.stop()
    again = EmbeddedPostgres(data_root / "data")
    again.start()
    try:
        assert again.url.split("@")[0] == server.url.split("@")[0]  # the same password
        assert query_one(again, "SELECT 1") == 1
    finally:
        again.stop()
