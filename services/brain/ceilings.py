"""Monthly ceilings: before each model call, whether the run's tenant has used up its monthly tokens or
spend (`monthly_tokens`, `monthly_cost_usd` in tenants.quotas), from month-to-date usage (core/usage.py)
that this brain caches for `quota_cache_seconds`.

A reached ceiling makes the run wait (`waiting_for` of type quota), never fail. It goes on when a root
admin raises the tenant's quota (the gateway queues the tenant's waiting runs again) or when the
calendar month (UTC) ends (`requeue_reset`, a brain chore).

How far a ceiling can be overshot: the check comes before a model call, so calls already past it
finish and count, at most one model response per running run of the tenant. This brain adds its own
commits to its cached totals at once; what other brains commit it sees at most `quota_cache_seconds`
late, so until then it may start calls for the tenant's runs it holds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import runs as run_store
from services.core import tenants, usage
from services.core.db.engine import autocommit
from services.core.journal import Journal
from services.core.tenants import Quotas

# Tenants whose views a brain keeps; past it, those not being read are forgotten (and read again).
MAX_TENANTS = 10_000
REQUEUE_BATCH = 200


@dataclass
class _View:
    """One tenant's quotas and month-to-date usage, as read at `read_at` (monotonic, before the read)."""

    month: date | None = None
    quotas: Quotas = field(default_factory=Quotas)
    tokens: int = 0
    cost_usd: float = 0.0
    read_at: float = -float("inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MonthlyCeilings:
    def __init__(self, engine: AsyncEngine, max_age_seconds: float) -> None:
        self.engine = engine
        self.max_age_seconds = max_age_seconds
        self._views: dict[str, _View] = {}

    async def reached(self, tenant_id: str) -> dict[str, Any] | None:
        """The `waiting_for` of the tenant's first monthly ceiling reached, or None."""
        asked_at = time.monotonic()
        month = usage.month_of(datetime.now(UTC))
        view = await self._view(tenant_id, month, asked_at - self.max_age_seconds)
        if _reached(view, month) is None:
            return None
        # A cached view may predate the raise that queued this run again: only a fresh read makes it wait.
        return _reached(await self._view(tenant_id, month, asked_at), month)

    def spent(self, tenant_id: str, tokens: int, cost_usd: float) -> None:
        """Count a model call this brain committed, before the next read would."""
        view = self._views.get(tenant_id)
        if view is not None:
            view.tokens += tokens
            view.cost_usd += cost_usd

    async def _view(self, tenant_id: str, month: date, read_since: float) -> _View:
        view = self._views.get(tenant_id)
        if view is None:
            self._forget_idle()
            view = self._views[tenant_id] = _View()
        async with view.lock:  # one read per tenant at a time; those waiting take its result
            if view.month != month or view.read_at < read_since:
                await self._read(tenant_id, month, view)
        return view

    async def _read(self, tenant_id: str, month: date, view: _View) -> None:
        read_at = time.monotonic()
        async with autocommit(self.engine).connect() as conn:
            quotas = await tenants.quotas_of(conn, tenant_id)
            used = usage.Totals()
            if quotas.monthly_tokens is not None or quotas.monthly_cost_usd is not None:
                used = await usage.month_to_date(conn, tenant_id, month)
        view.month, view.quotas, view.read_at = month, quotas, read_at
        view.tokens, view.cost_usd = used.tokens, used.cost_usd

    def _forget_idle(self) -> None:
        if len(self._views) >= MAX_TENANTS:
            for tenant_id in [t for t, view in self._views.items() if not view.lock.locked()]:
                del self._views[tenant_id]


def _reached(view: _View, month: date) -> dict[str, Any] | None:
    quotas = view.quotas
    checks: list[tuple[str, float, float | None]] = [
        ("monthly_tokens", view.tokens, quotas.monthly_tokens),
        ("monthly_cost_usd", round(view.cost_usd, 6), quotas.monthly_cost_usd),
    ]
    for quota, used, allowed in checks:
        if allowed is not None and used >= allowed:
            resets_at = datetime.combine(usage.next_month(month), datetime.min.time(), UTC)
            return {
                "type": "quota",
                "quota": quota,
                "used": used,
                "allowed": allowed,
                "resets_at": resets_at.isoformat(),
            }
    return None


async def requeue_reset(journal: Journal) -> list[str]:
    """Queue again the runs whose quota wait ended with the month; returns them, for waking."""
    async with autocommit(journal.engine).connect() as conn:
        due = await run_store.quota_waits(conn, reset_by_now=True, limit=REQUEUE_BATCH)
    requeued = []
    for run_id in due:
        async with journal.engine.begin() as conn:
            appended = await run_store.requeue_quota_wait(conn, run_id)
        if appended:
            await journal.publish(appended)
            requeued.append(run_id)
    return requeued
