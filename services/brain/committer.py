"""Commits one step of a run: the events it produced plus the run-row columns they change, fenced.

Each method is one transaction. A stale fencing token raises LeaseLost and nothing is written. Every
payload passes through its model in services.core.payloads on the way in.
"""

from __future__ import annotations

from typing import Any

from services.brain.models import ModelResponse
from services.core import events as event_log
from services.core import payloads
from services.core.journal import Journal
from services.core.status import RunStatus


class StepCommitter:
    def __init__(self, journal: Journal, run_id: str, fence: event_log.Fence) -> None:
        self.journal = journal
        self.run_id = run_id
        self.fence = fence

    async def commit(
        self, new_events: list[event_log.NewEvent], changes: dict[str, Any] | None = None
    ) -> list[event_log.Event]:
        request = event_log.Append(self.run_id, tuple(new_events), changes or {}, fence=self.fence)
        return await self.journal.append(request)

    async def start(self) -> list[event_log.Event]:
        running = RunStatus.RUNNING
        started = event_log.NewEvent.of(payloads.RunStatusChanged(status=running))
        return await self.commit([started], {"status": running})

    async def model_response(
        self,
        model: str,
        response: ModelResponse,
        workspace_snapshot: str | None,
        cost_usd: float = 0.0,
        context_seq: int | None = None,
    ) -> list[event_log.Event]:
        """`workspace_snapshot` is where the first call starts; later calls start after the one before."""
        usage = response.usage
        new_events = [
            event_log.NewEvent.of(
                payloads.ModelResponse(
                    text=response.text,
                    tool_calls=[
                        payloads.RequestedCall(id=c.id, name=c.name, input=c.input)
                        for c in response.tool_calls
                    ],
                    usage=payloads.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
                    stop_reason=response.stop_reason,
                    model=model,
                    cost_usd=cost_usd,
                    context_seq=context_seq,
                )
            )
        ]
        starts_from = payloads.StartsFrom(snapshot=workspace_snapshot)
        for call in response.tool_calls:
            new_events.append(
                event_log.NewEvent.of(
                    payloads.ToolCall(
                        call_id=call.id, name=call.name, input=call.input, starts_from=starts_from
                    )
                )
            )
            starts_from = payloads.StartsFrom(after_call=call.id)
        return await self.commit(
            new_events,
            {
                "step": event_log.Increment(1),
                "input_tokens": event_log.Increment(usage.input_tokens),
                "output_tokens": event_log.Increment(usage.output_tokens),
                "cost_usd": event_log.Increment(cost_usd),
            },
        )

    async def tool_result(
        self, result: dict[str, Any], before: list[event_log.NewEvent] | None = None
    ) -> list[event_log.Event]:
        """`before` carries sandbox events that belong in the same commit, ahead of the result."""
        new_events = [*(before or []), _tool_result(result)]
        return await self.commit(new_events, {"tool_calls": event_log.Increment(1)})

    async def tool_results(self, results: list[dict[str, Any]]) -> list[event_log.Event]:
        """Results settled without a sandbox (refusals, interruptions), in one commit."""
        new_events = [_tool_result(result) for result in results]
        return await self.commit(new_events, {"tool_calls": event_log.Increment(len(results))})

    async def wait(self, waiting_for: dict[str, Any]) -> list[event_log.Event]:
        waiting = event_log.NewEvent.of(payloads.RunWaiting.parse({"waiting_for": waiting_for}))
        return await self.commit(
            [waiting], {"status": RunStatus.WAITING, "waiting_for": waiting.data["waiting_for"]}
        )

    async def complete(self, text: str, artifacts: list[dict[str, Any]]) -> list[event_log.Event]:
        new_events = [event_log.NewEvent.of(payloads.ArtifactCreated.parse(a)) for a in artifacts]
        new_events.append(event_log.NewEvent.of(payloads.RunCompleted(result=text)))
        changes = {"status": RunStatus.COMPLETED, "result": text, "ended_at": event_log.NOW}
        return await self.commit(new_events, changes)

    async def fail(self, code: str, message: str) -> list[event_log.Event]:
        failed = event_log.NewEvent.of(
            payloads.RunFailed(error=payloads.ErrorInfo(code=code, message=message))
        )
        changes = {"status": RunStatus.FAILED, "error": failed.data["error"], "ended_at": event_log.NOW}
        return await self.commit([failed], changes)


def _tool_result(result: dict[str, Any]) -> event_log.NewEvent:
    return event_log.NewEvent.of(payloads.ToolResult.parse(result))
