"""A session's `budget` (a spend ceiling as `max_list_cost` in USD) as a loopd run's `max_cost_usd`: read
from a create or an update, checked against the model's price, and replaced mid-session as loopd
raises a budget (a `budget.raised` event, which also wakes a session that waits for it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import events as event_log
from services.core import payloads, sessions
from services.core import runs as run_store
from services.core.agents import USD_MAX
from services.core.errors import Conflict, InvalidRequest
from services.core.settings import Settings
from services.core.status import RunStatus


def max_cost_of(budget: dict[str, Any], model: str, settings: Settings) -> float:
    """The USD ceiling of a `{type: limit, max_list_cost: {amount, currency}}` for a run of `model`."""
    cost = (budget.get("max_list_cost") or {}) if budget.get("type") == "limit" else {}
    try:
        amount = float(cost["amount"])
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest(
            "budget is {type: limit, max_list_cost: {amount, currency}}", code="invalid_budget"
        ) from None
    if cost.get("currency", "USD") != "USD" or not 0 < amount <= USD_MAX:
        raise InvalidRequest(
            f"max_list_cost is a positive amount in USD, at most {USD_MAX}", code="invalid_budget"
        )
    if model not in settings.model_prices:
        raise InvalidRequest(
            f"{model} has no price in this deployment (LOOPD_MODEL_PRICES), so a cost budget could never "
            "be reached",
            code="model_not_budgetable",
        )
    return amount


async def replace(
    conn: AsyncConnection, run: Row[Any], budget: dict[str, Any] | None, settings: Settings
) -> list[event_log.Event]:
    """Replace the spend ceiling of a session made with one (a run the caller has locked); a session
    that waits for its ceiling goes on once the new one lies above what it has spent."""
    sessions.ensure_open(run)
    if run.status == RunStatus.CANCELLED:
        raise Conflict(f"session {run.id} is terminated", code="run_cancelled")
    if (run.budget or {}).get("max_cost_usd") is None:
        raise InvalidRequest(
            "a budget can only be set when the session is created", code="budget_create_only"
        )
    if budget is None:
        raise InvalidRequest(
            "removing a session's budget is not served by loopd; set a higher max_list_cost",
            code="not_served",
        )
    amount = max_cost_of(budget, run.agent_spec["model"], settings)
    if amount <= run.cost_usd:
        raise InvalidRequest(
            f"max_list_cost {amount} is not above what the session has spent ({run.cost_usd:.6f} USD)",
            code="budget_not_raised",
        )
    raised = event_log.NewEvent.of(payloads.BudgetRaised(max_cost_usd=amount))
    changed = {**(run.budget or {}), "max_cost_usd": amount}
    waiting = run.waiting_for or {}
    if (
        run.status == RunStatus.WAITING
        and waiting.get("type") == "budget"
        and waiting.get("limit") == "max_cost_usd"
    ):
        return await run_store.settle_wait(conn, run.id, [raised], None, budget=changed)
    return await event_log.append(
        conn, event_log.Append(run.id, (raised,), {"budget": changed}, allow_terminal=True)
    )
