"""What the caller's tenant used (tokens, cost, tool calls, sandbox seconds), per agent and per UTC day;
the deployment's root admins may ask for every tenant's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.core import usage
from services.core.db.engine import autocommit
from services.core.errors import Forbidden, InvalidRequest
from services.core.keys import Role
from services.gateway.auth import Caller, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import errors
from services.gateway.responses import UsageReport

router = APIRouter(prefix="/v1/usage", tags=["usage"])

MAX_DAYS = 366
Day = Annotated[date | None, Query(description="a UTC day, YYYY-MM-DD; both ends are included")]


@router.get("", response_model=UsageReport, responses=errors(401, 403, 422, 429))
async def read_usage(
    caller: Viewer,
    services: ServicesDep,
    since: Day = None,
    until: Day = None,
    all_tenants: Annotated[
        bool, Query(description="every tenant's usage, per tenant (admins of the root tenant only)")
    ] = False,
) -> dict[str, Any]:
    """Usage between `since` and `until`; without them, this calendar month (UTC). With only one, the
    other is the start or end of its month."""
    first, last = days_asked(since, until)
    tenant_id = None if all_tenants else caller.tenant_id
    if all_tenants:
        require_root_admin(caller)
    async with autocommit(services.engine).connect() as conn:
        found = await usage.report(conn, tenant_id, first, last)
    return usage.report_to_wire(found, tenant_id)


def days_asked(since: date | None, until: date | None) -> tuple[date, date]:
    """The range asked for; a missing end is the start or the end of the other end's month."""
    if since is None and until is None:
        since = usage.month_of(datetime.now(UTC))
    first = since or (until or date.max).replace(day=1)
    last = until or _month_end(first)
    if first > last:
        raise InvalidRequest(f"since ({first}) is after until ({last})", code="invalid_range")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise InvalidRequest(f"the range may span {MAX_DAYS} days at most, not {days}", code="invalid_range")
    return first, last


def _month_end(day: date) -> date:
    if (day.year, day.month) == (date.max.year, date.max.month):
        return date.max
    return usage.next_month(day.replace(day=1)) - timedelta(days=1)


def require_root_admin(caller: Caller) -> None:
    if not (caller.root and caller.role.allows(Role.ADMIN)):
        raise Forbidden(
            "only admins of the deployment's root tenant see every tenant's usage", code="forbidden"
        )
