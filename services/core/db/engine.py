"""Builds the async SQLAlchemy engine; each process makes one in its lifespan, never at import."""

from __future__ import annotations

import select
import weakref
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core.settings import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    pool_size = pool_size or settings.database_pool_size
    engine = create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=300,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_dead_connection)
    return engine


_AUTOCOMMIT_VIEWS: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool with every statement its own transaction: for reads and one-statement writes.

    Without an open transaction there is no BEGIN or ROLLBACK round trip, and psycopg keeps its
    prepared statements (a ROLLBACK makes it deallocate all of them).
    """
    view = _AUTOCOMMIT_VIEWS.get(engine)
    if view is None:
        view = _AUTOCOMMIT_VIEWS[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return view


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database; raises if it cannot be reached."""
    async with autocommit(engine).connect() as conn:
        await conn.execute(text("SELECT 1"))


def _refuse_dead_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Lets every process ride out a PostgreSQL restart without a ping round trip per checkout.

    An idle connection has nothing to read; if its socket is readable, the server has closed it
    (or sent something unasked), so the pool replaces it before anyone runs a statement on it.
    """
    driver = dbapi_connection.driver_connection
    if driver.closed or driver.broken:
        raise DisconnectionError("the connection is closed")
    # poll, not select: a busy process has descriptors beyond select's limit of 1024.
    poller = select.poll()
    poller.register(driver.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")
