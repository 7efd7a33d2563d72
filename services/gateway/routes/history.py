"""Time travel: fork a run at any seq (its log up to there, and its workspace exactly as it was), and
diff two runs to see where they diverge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, literal, select

from services.core import events as log
from services.core import runs as run_store
from services.core.agents import AgentSpec
from services.core.db.engine import autocommit
from services.core.db.schema import events, runs
from services.core.errors import InvalidRequest
from services.gateway.deps import ServicesDep

router = APIRouter(prefix="/v1/runs", tags=["history"])


class ToolResultOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str
    output: str = Field(max_length=1_000_000)


class ForkOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    system: str | None = None
    tool_result: ToolResultOverride | None = None


class Fork(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_seq: int = Field(ge=2)
    overrides: ForkOverrides = Field(default_factory=ForkOverrides)


@router.post("/{run_id}/fork", status_code=201)
async def fork_run(run_id: str, body: Fork, services: ServicesDep) -> dict[str, Any]:
    tenant = services.settings.tenant
    async with services.engine.begin() as conn:
        parent = await run_store.get_run(conn, tenant, run_id)
        if body.at_seq > parent.last_seq:
            raise InvalidRequest(
                f"at_seq {body.at_seq} is beyond the end of run {run_id} (seq {parent.last_seq})",
                code="invalid_seq",
            )
        spec = _overridden_spec(parent.agent_spec, body.overrides)
        override = body.overrides.tool_result
        if override is not None:
            await _ensure_pending(conn, run_id, override.call_id, body.at_seq)
        fork_id = run_store.new_id("run")
        copied = select(literal(fork_id), events.c.seq, events.c.type, events.c.at, events.c.data).where(
            events.c.run_id == run_id, events.c.seq <= body.at_seq
        )
        counters = await _counters(conn, run_id, body.at_seq)
        await conn.execute(
            runs.insert().values(
                id=fork_id,
                tenant_id=tenant,
                agent_id=parent.agent_id,
                agent_version=parent.agent_version,
                agent_spec=spec,
                status="queued",
                input=parent.input,
                metadata=parent.metadata,
                budget=parent.budget,
                last_seq=body.at_seq,
                forked_from={"run_id": run_id, "seq": body.at_seq},
                **counters,
            )
        )
        await conn.execute(events.insert().from_select(["run_id", "seq", "type", "at", "data"], copied))
        new_events = [
            log.NewEvent(
                log.RUN_FORKED,
                {
                    "from": {"run_id": run_id, "seq": body.at_seq},
                    "overrides": body.overrides.model_dump(exclude_none=True),
                },
            )
        ]
        if override is not None:
            new_events.append(
                log.NewEvent(
                    log.TOOL_RESULT,
                    {
                        "call_id": override.call_id,
                        "ok": True,
                        "output": override.output,
                        "overridden": True,
                    },
                )
            )
        appended = await log.append(conn, log.Append(fork_id, tuple(new_events), allow_terminal=True))
        row = await run_store.get_run(conn, tenant, fork_id)
    await services.journal.publish(appended)
    await services.bus.wake(fork_id)
    return run_store.run_to_wire(row)


@router.get("/{run_a}/diff/{run_b}")
async def diff_runs(
    run_a: str, run_b: str, services: ServicesDep, limit: int = Query(200, ge=1, le=5000)
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        for run_id in (run_a, run_b):
            await run_store.get_run(conn, services.settings.tenant, run_id)
        a = await log.read(conn, run_a)
        b = await log.read(conn, run_b)
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


def _overridden_spec(spec: dict[str, Any], overrides: ForkOverrides) -> dict[str, Any]:
    changed = {**spec, **overrides.model_dump(include={"model", "system"}, exclude_none=True)}
    if overrides.model is not None and not overrides.model.startswith("scripted"):
        changed["script"] = None
    try:
        return AgentSpec.model_validate(changed).model_dump(mode="json")
    except ValidationError as error:
        raise InvalidRequest(f"overrides: {error.errors()[0].get('msg')}", code="validation_error") from None


async def _ensure_pending(conn: Any, run_id: str, call_id: str, at_seq: int) -> None:
    kinds = (
        (
            await conn.execute(
                select(events.c.type).where(
                    events.c.run_id == run_id,
                    events.c.seq <= at_seq,
                    events.c.data["call_id"].astext == call_id,
                    events.c.type.in_((log.TOOL_CALL, log.TOOL_RESULT)),
                )
            )
        )
        .scalars()
        .all()
    )
    if log.TOOL_CALL not in kinds or log.TOOL_RESULT in kinds:
        raise InvalidRequest(
            f"call {call_id!r} is not waiting for its result at seq {at_seq}", code="call_not_pending"
        )


async def _counters(conn: Any, run_id: str, at_seq: int) -> dict[str, Any]:
    """The run-row counters of the copied history, so the fork's usage starts where the parent's was."""
    upto = (events.c.run_id == run_id) & (events.c.seq <= at_seq)
    responses = select(events.c.data).where(upto, events.c.type == log.MODEL_RESPONSE).subquery()
    usage = responses.c.data["usage"]
    row = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(usage["input_tokens"].as_integer()), 0),
                func.coalesce(func.sum(usage["output_tokens"].as_integer()), 0),
            ).select_from(responses)
        )
    ).one()
    results = (
        await conn.execute(select(func.count()).where(upto, events.c.type == log.TOOL_RESULT))
    ).scalar()
    return {"step": row[0], "input_tokens": row[1], "output_tokens": row[2], "tool_calls": results or 0}
