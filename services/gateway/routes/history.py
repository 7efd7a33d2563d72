"""Time travel: fork a run at any seq (its log up to there, and its workspace exactly as it was), and
diff two runs to see where they diverge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.core import audit
from services.core import events as event_log
from services.core import runs as run_store
from services.core.db.engine import autocommit
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import BIGINT_MAX, BODY_ERRORS, IdField, RunId, errors
from services.gateway.responses import Diff, Run

router = APIRouter(prefix="/v1/runs", tags=["history"])


class ToolResultOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: IdField
    output: str = Field(max_length=1_000_000)


class ForkOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    system: str | None = None
    tool_result: ToolResultOverride | None = None


class Fork(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_seq: int = Field(ge=2, le=BIGINT_MAX)
    overrides: ForkOverrides = Field(default_factory=ForkOverrides)


@router.post("/{run_id}/fork", status_code=201, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409))
async def fork_run(run_id: RunId, body: Fork, caller: Member, services: ServicesDep) -> dict[str, Any]:
    override = body.overrides.tool_result
    async with services.engine.begin() as conn:
        parent = await run_store.get_run(conn, caller.tenant_id, run_id)
        row, appended = await run_store.fork_run(
            conn,
            parent,
            body.at_seq,
            overrides=body.overrides.model_dump(exclude_none=True),
            tool_result=None if override is None else (override.call_id, override.output),
        )
        await audit.record(
            conn, caller.actor, "run.forked", "run", row.id, {"from_run": run_id, "at_seq": body.at_seq}
        )
    await services.journal.publish(appended)
    await services.bus.wake(row.id)
    return run_store.run_to_wire(row)


# Payload fields their writer left out stay out, as they are stored.
@router.get(
    "/{run_a}/diff/{run_b}",
    response_model=Diff,
    response_model_exclude_unset=True,
    responses=errors(404, 422),
)
async def diff_runs(
    run_a: RunId, run_b: RunId, caller: Viewer, services: ServicesDep, limit: int = Query(200, ge=1, le=5000)
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        for run_id in (run_a, run_b):
            await run_store.get_run(conn, caller.tenant_id, run_id)
        a = await event_log.read(conn, run_a)
        b = await event_log.read(conn, run_b)
    diverges_at = next(
        (x.seq for x, y in zip(a, b, strict=False) if (x.type, x.data) != (y.type, y.data)),
        None if len(a) == len(b) else min(len(a), len(b)) + 1,
    )
    after = diverges_at or (len(a) + 1)
    return {
        "diverges_at": diverges_at,
        "a": [e.to_wire() for e in a if e.seq >= after][:limit],
        "b": [e.to_wire() for e in b if e.seq >= after][:limit],
    }
