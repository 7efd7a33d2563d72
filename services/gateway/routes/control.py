"""People in the loop: approvals, interrupts, budget raises and client tool results."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.core import audit, payloads
from services.core import events as event_log
from services.core import runs as run_store
from services.core.agents import BudgetLimits
from services.core.errors import Conflict
from services.core.status import RUNNABLE_STATUSES
from services.gateway.auth import Caller, Member
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, CallId, RunId, errors
from services.gateway.responses import Run
from services.gateway.waiting import check_wall_time, ensure_call, settle_call, waiting_for

router = APIRouter(prefix="/v1/runs/{run_id}", tags=["control"])


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny"]
    message: str = Field("", max_length=20_000)


class Interrupt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(None, min_length=1, max_length=200_000)


class ClientToolResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str = Field(max_length=1_000_000)
    ok: bool = True


async def _apply(
    services: ServicesDep, caller: Caller, run_id: str, change: Any, action: str, details: dict[str, Any]
) -> dict[str, Any]:
    """Run `change(conn, run)` with the run row locked and audit it, then publish, wake and answer
    with the run."""
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, run_id, lock=True)
        appended = await change(conn, run)
        await audit.record(conn, caller.actor, action, "run", run_id, details)
        row = await run_store.get_run(conn, caller.tenant_id, run_id)
    await services.journal.publish(appended)
    await services.bus.wake(run_id)
    return run_store.run_to_wire(row)


@router.post(
    "/approvals/{call_id}", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409)
)
async def decide(
    run_id: RunId, call_id: CallId, body: Approval, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async def change(conn: Any, run: Any) -> list[event_log.Event]:
        await ensure_call(conn, run.id, call_id)
        remaining = settle_call(run, call_id, "approval", "not_waiting_for_approval")
        decision = event_log.NewEvent.of(payloads.ToolApproval(call_id=call_id, **body.model_dump()))
        return await run_store.settle_wait(conn, run.id, [decision], remaining)

    action = "tool.approved" if body.decision == "allow" else "tool.denied"
    return await _apply(services, caller, run_id, change, action, {"call_id": call_id})


@router.post("/interrupt", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409))
async def interrupt(
    run_id: RunId, caller: Member, services: ServicesDep, body: Interrupt | None = None
) -> dict[str, Any]:
    async def change(conn: Any, run: Any) -> list[event_log.Event]:
        if run.status not in RUNNABLE_STATUSES:
            raise Conflict(
                f"run {run.id} is {run.status}; only a running run can be interrupted", code="not_running"
            )
        event = event_log.NewEvent.of(payloads.UserInterrupt(message=(body or Interrupt()).message))
        return await event_log.append(conn, event_log.Append(run.id, (event,)))

    return await _apply(services, caller, run_id, change, "run.interrupted", {})


@router.post("/budget", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409))
async def raise_budget(
    run_id: RunId, body: BudgetLimits, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    check_wall_time(body, services.settings.ceilings_for(caller.tenant_id))

    async def change(conn: Any, run: Any) -> list[event_log.Event]:
        waiting_for(run, "budget", "not_waiting_for_budget")
        raised = event_log.NewEvent.of(payloads.BudgetRaised.parse(body.model_dump(exclude_none=True)))
        budget = {**(run.budget or {}), **raised.data}
        return await run_store.settle_wait(conn, run.id, [raised], None, budget=budget)

    raised_to = body.model_dump(exclude_none=True)
    return await _apply(services, caller, run_id, change, "run.budget_raised", raised_to)


@router.post(
    "/tool_results/{call_id}", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409)
)
async def submit_tool_result(
    run_id: RunId, call_id: CallId, body: ClientToolResult, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async def change(conn: Any, run: Any) -> list[event_log.Event]:
        call = await ensure_call(conn, run.id, call_id)
        remaining = settle_call(run, call_id, "tool_result", "not_waiting_for_tool_result")
        result = payloads.ToolResult(
            call_id=call_id,
            name=call["name"],
            ok=body.ok,
            output=body.output,
            error=None if body.ok else "client_tool_error",
        )
        return await run_store.settle_wait(
            conn,
            run.id,
            [event_log.NewEvent.of(result)],
            remaining,
            tool_calls=event_log.Increment(1),
        )

    details = {"call_id": call_id, "ok": body.ok}
    return await _apply(services, caller, run_id, change, "tool_result.submitted", details)
