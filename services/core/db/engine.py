"""Builds the async SQLAlchemy engine; each process makes one in its lifespan, never at import."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core.settings import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    # pool_pre_ping lets every process ride out a PostgreSQL restart: dead connections are
    # replaced on checkout instead of failing the next query.
    pool_size = pool_size or settings.database_pool_size
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=300,
    )
