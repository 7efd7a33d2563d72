"""Sub-agents: `spawn_agent` starts a child run and the parent waits durably for its outcome, which
comes back as the tool's result. Child ids are derived from (parent, call), so a retried spawn after a
crash finds the same child instead of starting a second one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.brain.models import ToolCall
from services.brain.triage import refusal
from services.core import events as log
from services.core.agents import AgentSpec
from services.core.db.schema import agents, runs
from services.core.journal import Journal
from services.core.settings import Settings


def child_run_id(parent_run_id: str, call_id: str) -> str:
    return "run_" + hashlib.sha256(f"{parent_run_id}/{call_id}".encode()).hexdigest()[:20]


class Children:
    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal

    async def spawn(self, run_id: str, calls: tuple[ToolCall, ...], fence: log.Fence) -> None:
        """Start a child per call (or settle the call with a refusal) and make the parent wait for them."""
        parent_events: list[log.NewEvent] = []
        appended: list[log.Event] = []
        children: list[dict[str, str]] = []
        async with self.journal.engine.begin() as conn:
            parent = (await conn.execute(select(runs).where(runs.c.id == run_id))).one()
            for call in calls:
                problem = await self._refuse(conn, parent, call)
                if isinstance(problem, str):
                    parent_events.append(
                        log.NewEvent(log.TOOL_RESULT, refusal(call, "spawn_refused", problem))
                    )
                    continue
                child_id = child_run_id(run_id, call.id)
                appended += await self._create_child(conn, parent, call, child_id, *problem)
                parent_events.append(
                    log.NewEvent(log.CHILD_STARTED, {"call_id": call.id, "child_run_id": child_id})
                )
                children.append({"call_id": call.id, "child_run_id": child_id})
            changes: dict[str, Any] = {}
            if children:
                waiting_for = {
                    "type": "child",
                    "call_ids": [c["call_id"] for c in children],
                    "children": children,
                }
                parent_events.append(log.NewEvent(log.RUN_WAITING, {"waiting_for": waiting_for}))
                changes = {"status": "waiting", "waiting_for": waiting_for}
            appended += await log.append(conn, log.Append(run_id, tuple(parent_events), changes, fence=fence))
        await self.journal.publish(appended)
        for child in children:
            await self.journal.bus.wake(child["child_run_id"])

    async def _create_child(
        self,
        conn: AsyncConnection,
        parent: Any,
        call: ToolCall,
        child_id: str,
        spec: Any,
        agent_id: Any,
        version: Any,
    ) -> list[log.Event]:
        created = await conn.execute(
            insert(runs)
            .values(
                id=child_id,
                tenant_id=parent.tenant_id,
                agent_id=agent_id,
                agent_version=version,
                agent_spec=spec,
                status="queued",
                input=call.input["input"],
                metadata={},
                parent_run_id=parent.id,
            )
            .on_conflict_do_nothing(index_elements=[runs.c.id])
        )
        if not created.rowcount:
            return []  # started by an earlier attempt of this step
        started = {
            "input": call.input["input"],
            "agent_id": agent_id,
            "agent_version": version,
            "parent_run_id": parent.id,
        }
        return await log.append(
            conn,
            log.Append(
                child_id,
                (
                    log.NewEvent(log.RUN_CREATED, started),
                    log.NewEvent(log.USER_MESSAGE, {"content": call.input["input"]}),
                ),
            ),
        )

    async def deliver_to_parent(self, child_id: str) -> None:
        """If a parent waits on this finished child, give it the child's outcome (and wake it when done)."""
        async with self.journal.engine.begin() as conn:
            child = (await conn.execute(select(runs).where(runs.c.id == child_id))).one_or_none()
            if child is None or child.parent_run_id is None or child.status not in log.TERMINAL_STATUSES:
                return
            parent = (
                await conn.execute(select(runs).where(runs.c.id == child.parent_run_id).with_for_update())
            ).one()
            waiting = parent.waiting_for or {}
            entry = next((c for c in waiting.get("children", []) if c["child_run_id"] == child_id), None)
            if parent.status != "waiting" or entry is None:
                return
            ok = child.status == "completed"
            output = (
                child.result
                if ok
                else f"the sub-agent {child.status}: {(child.error or {}).get('message', '')}"
            )
            result = {
                "call_id": entry["call_id"],
                "name": "spawn_agent",
                "ok": ok,
                "output": output or "",
                "error": None if ok else f"child_{child.status}",
                "child_run_id": child_id,
            }
            left = [c for c in waiting["children"] if c["child_run_id"] != child_id]
            new_events = [log.NewEvent(log.TOOL_RESULT, result)]
            changes: dict[str, Any] = {"tool_calls": log.Increment(1)}
            if left:
                changes["waiting_for"] = {
                    **waiting,
                    "call_ids": [c["call_id"] for c in left],
                    "children": left,
                }
            else:
                new_events.append(log.NewEvent(log.RUN_STATUS, {"status": "queued"}))
                changes.update(status="queued", waiting_for=None)
            appended = await log.append(conn, log.Append(parent.id, tuple(new_events), changes))
        await self.journal.publish(appended)
        if not left:
            await self.journal.bus.wake(parent.id)

    async def _refuse(self, conn: AsyncConnection, parent: Any, call: ToolCall) -> str | tuple[Any, ...]:
        """Why this spawn can't happen, or the child's (spec, agent_id, version)."""
        if not isinstance(call.input.get("input"), str) or not call.input["input"]:
            return "spawn_agent needs a non-empty 'input'"
        if ("agent_id" in call.input) == ("agent" in call.input):
            return "spawn_agent needs exactly one of 'agent_id' or 'agent' (an inline spec)"
        depth = await _depth(conn, parent)
        if depth + 1 > self.settings.max_agent_depth:
            return f"sub-agents may nest at most {self.settings.max_agent_depth} deep"
        count = (await conn.execute(select(func.count()).where(runs.c.parent_run_id == parent.id))).scalar()
        known = await _kids(conn, parent.id)
        if child_run_id(parent.id, call.id) not in known and (count or 0) >= self.settings.max_children:
            return f"a run may start at most {self.settings.max_children} sub-agents"
        if "agent" in call.input:
            try:
                return AgentSpec.model_validate(call.input["agent"]).model_dump(mode="json"), None, None
            except ValidationError as error:
                return f"invalid inline agent spec: {error.errors()[0].get('msg')}"
        row = (
            await conn.execute(
                select(agents)
                .where(agents.c.tenant_id == parent.tenant_id, agents.c.id == call.input["agent_id"])
                .order_by(agents.c.version.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return f"no agent {call.input['agent_id']!r}"
        return row.spec, row.id, row.version


async def _depth(conn: AsyncConnection, run: Any) -> int:
    depth, parent_id = 0, run.parent_run_id
    while parent_id is not None:
        depth += 1
        parent_id = (await conn.execute(select(runs.c.parent_run_id).where(runs.c.id == parent_id))).scalar()
    return depth


async def _kids(conn: AsyncConnection, run_id: str) -> set[str]:
    return set((await conn.execute(select(runs.c.id).where(runs.c.parent_run_id == run_id))).scalars())
