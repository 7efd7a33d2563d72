"""Sub-agents: `spawn_agent` starts a child run and the parent waits durably for its outcome, which
comes back as the tool's result. Child ids are derived from (parent, call), so a retried spawn after a
crash finds the same child instead of starting a second one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.brain.models import ToolCall
from services.brain.triage import refusal
from services.core import agent_store, payloads
from services.core import events as event_log
from services.core import runs as run_store
from services.core.agents import AgentSpec
from services.core.journal import Journal
from services.core.settings import Settings
from services.core.status import TERMINAL_STATUSES, RunStatus
from services.core.tools import Tool


def child_run_id(parent_run_id: str, call_id: str) -> str:
    return "run_" + hashlib.sha256(f"{parent_run_id}/{call_id}".encode()).hexdigest()[:20]


class Children:
    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal

    async def spawn(self, run_id: str, calls: tuple[ToolCall, ...], fence: event_log.Fence) -> None:
        """Start a child per call (or settle the call with a refusal) and make the parent wait for them."""
        parent_events: list[event_log.NewEvent] = []
        appended: list[event_log.Event] = []
        children: list[payloads.ChildRef] = []
        async with self.journal.engine.begin() as conn:
            parent = await run_store.find_run(conn, run_id)
            assert parent is not None, f"the stepped run {run_id} has a row"
            for call in calls:
                problem = await self._refuse(conn, parent, call)
                if isinstance(problem, str):
                    refused = payloads.ToolResult.parse(refusal(call, "spawn_refused", problem))
                    parent_events.append(event_log.NewEvent.of(refused))
                    continue
                child_id = child_run_id(run_id, call.id)
                spec, agent_id, version = problem
                appended += await run_store.create_child(
                    conn,
                    parent,
                    child_id,
                    spec=spec,
                    agent_id=agent_id,
                    agent_version=version,
                    user_input=call.input["input"],
                )
                parent_events.append(
                    event_log.NewEvent.of(payloads.ChildStarted(call_id=call.id, child_run_id=child_id))
                )
                children.append(payloads.ChildRef(call_id=call.id, child_run_id=child_id))
            changes: dict[str, Any] = {}
            if children:
                waiting_for = payloads.WaitingForChild(
                    call_ids=[c.call_id for c in children], children=children
                )
                waiting = event_log.NewEvent.of(payloads.RunWaiting(waiting_for=waiting_for))
                parent_events.append(waiting)
                changes = {"status": RunStatus.WAITING, "waiting_for": waiting.data["waiting_for"]}
            appended += await event_log.append(
                conn, event_log.Append(run_id, tuple(parent_events), changes, fence=fence)
            )
        await self.journal.publish(appended)
        for child in children:
            await self.journal.bus.wake(child.child_run_id)

    async def deliver_to_parent(self, child_id: str) -> None:
        """If a parent waits on this finished child, give it the child's outcome (and wake it when done)."""
        async with self.journal.engine.begin() as conn:
            child = await run_store.find_run(conn, child_id)
            if child is None or child.parent_run_id is None or child.status not in TERMINAL_STATUSES:
                return
            parent = await run_store.find_run(conn, child.parent_run_id, lock=True)
            assert parent is not None, "a child's parent row outlives it"
            waiting = parent.waiting_for or {}
            entry = next((c for c in waiting.get("children", []) if c["child_run_id"] == child_id), None)
            if parent.status != RunStatus.WAITING or entry is None:
                return
            ok = child.status == RunStatus.COMPLETED
            output = (
                child.result
                if ok
                else f"the sub-agent {child.status}: {(child.error or {}).get('message', '')}"
            )
            result = payloads.ToolResult(
                call_id=entry["call_id"],
                name=str(Tool.SPAWN_AGENT),
                ok=ok,
                output=output or "",
                error=None if ok else f"child_{child.status}",
                child_run_id=child_id,
            )
            left = [c for c in waiting["children"] if c["child_run_id"] != child_id]
            remaining = (
                {**waiting, "call_ids": [c["call_id"] for c in left], "children": left} if left else None
            )
            appended = await run_store.settle_wait(
                conn,
                parent.id,
                [event_log.NewEvent.of(result)],
                remaining,
                tool_calls=event_log.Increment(1),
            )
        await self.journal.publish(appended)
        if not left:
            await self.journal.bus.wake(parent.id)

    async def _refuse(
        self, conn: AsyncConnection, parent: Row[Any], call: ToolCall
    ) -> str | tuple[dict[str, Any], str | None, int | None]:
        """Why this spawn can't happen, or the child's (spec, agent_id, version)."""
        if not isinstance(call.input.get("input"), str) or not call.input["input"]:
            return "spawn_agent needs a non-empty 'input'"
        if ("agent_id" in call.input) == ("agent" in call.input):
            return "spawn_agent needs exactly one of 'agent_id' or 'agent' (an inline spec)"
        if await run_store.depth(conn, parent) + 1 > self.settings.max_agent_depth:
            return f"sub-agents may nest at most {self.settings.max_agent_depth} deep"
        known = await run_store.child_ids(conn, parent.id)
        if child_run_id(parent.id, call.id) not in known and len(known) >= self.settings.max_children:
            return f"a run may start at most {self.settings.max_children} sub-agents"
        if "agent" in call.input:
            try:
                return AgentSpec.model_validate(call.input["agent"]).model_dump(mode="json"), None, None
            except ValidationError as error:
                return f"invalid inline agent spec: {error.errors()[0].get('msg')}"
        row = await agent_store.find_agent(conn, parent.tenant_id, call.input["agent_id"])
        if row is None:
            return f"no agent {call.input['agent_id']!r}"
        return row.spec, row.id, row.version
