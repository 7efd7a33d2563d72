"""Steps one run while this brain holds its lease: call the model, run tools, commit, repeat.

Every decision is taken from the state rebuilt from the log, and every outcome is committed before
the next decision, so a crash at any point costs at most the uncommitted step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.brain.committer import StepCommitter
from services.brain.context import NextAction, RunState, rebuild
from services.brain.dispatch import ToolDispatcher
from services.brain.models import ModelProvider, ModelRequest, ModelResponse, ToolSpec, build_provider
from services.core import events as log
from services.core import leases
from services.core.agents import AgentSpec
from services.core.db.schema import runs
from services.core.errors import InfrastructureError, LeaseLost, ModelError
from services.core.journal import Journal
from services.core.settings import Settings
from services.hands.tools import TOOL_SCHEMAS

logger = logging.getLogger(__name__)


class RunStepper:
    def __init__(
        self, settings: Settings, journal: Journal, dispatcher: ToolDispatcher, run_id: str, fence: log.Fence
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.dispatcher = dispatcher
        self.run_id = run_id
        self.committer = StepCommitter(journal, run_id, fence)
        self.state = RunState(run_id=run_id)

    async def drive(self) -> None:
        """Step until the run has nothing left to do now (finished, idle, or waiting)."""
        spec, created_at = await self._load_run()
        provider = build_provider(spec.model, self.settings, [t.model_dump() for t in spec.script or []])
        try:
            await self._refresh()
            if self.state.status in log.TERMINAL_STATUSES:
                if self.state.status != "completed":
                    await self.dispatcher.release(self.state)
                return
            if self.state.status == "queued" and self.state.next_action() is not NextAction.IDLE:
                await self._commit(self.committer.start())
            while (action := self.state.next_action()) is not NextAction.IDLE:
                if await self._over_limits(spec, created_at):
                    break
                await self._take(action, spec, provider)
        except InfrastructureError as error:
            logger.warning("run %s failed after retries: %s", self.run_id, error.message)
            await self._commit(self.committer.fail(error.code, error.message))
            await self.dispatcher.release(self.state)
        finally:
            await provider.aclose()

    async def _take(self, action: NextAction, spec: AgentSpec, provider: ModelProvider) -> None:
        if action is NextAction.CALL_MODEL:
            response = await self._call_model(spec, provider)
            if response is not None:
                await self._commit(
                    self.committer.model_response(spec.model, response, self.state.workspace_snapshot)
                )
        elif action is NextAction.RUN_TOOL:
            call = self.state.next_tool_call()
            outcome = await self.dispatcher.run(self.state, call, spec)
            await self._commit(self.committer.tool_result(outcome.result, outcome.sandbox_events))
        elif action is NextAction.FINISH:
            artifacts = await self.dispatcher.workspace_artifacts(self.state)
            await self._commit(self.committer.complete(self.state.final_text or "", artifacts))

    async def _call_model(self, spec: AgentSpec, provider: ModelProvider) -> ModelResponse | None:
        request = ModelRequest(
            model=spec.model,
            system=spec.system,
            messages=tuple(self.state.messages),
            tools=tuple(
                ToolSpec(name, TOOL_SCHEMAS[name]["description"], TOOL_SCHEMAS[name]["input_schema"])
                for name in spec.tools
            ),
        )
        # A brain that lost its lease must not call the model for a step another brain may own.
        await self._ensure_lease()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(spec.retry.max_attempts),
            wait=_model_wait,
            retry=retry_if_exception(lambda e: isinstance(e, ModelError) and e.retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await provider.complete(request)
        except ModelError as error:
            await self._commit(self.committer.fail(error.code, error.message))
        return None

    async def _over_limits(self, spec: AgentSpec, created_at: datetime) -> bool:
        if (
            self.state.next_action() is NextAction.CALL_MODEL
            and self.state.model_calls >= spec.limits.max_steps
        ):
            await self._commit(
                self.committer.fail(
                    "max_steps_exceeded", f"the run reached its limit of {spec.limits.max_steps} model calls"
                )
            )
            return True
        if datetime.now(UTC) - created_at > timedelta(seconds=spec.limits.timeout_seconds):
            await self._commit(
                self.committer.fail(
                    "timeout", f"the run exceeded its wall-time limit of {spec.limits.timeout_seconds:.0f}s"
                )
            )
            await self.dispatcher.release(self.state)
            return True
        return False

    async def _commit(self, pending: Awaitable[object]) -> None:
        """Await a commit and fold what it appended, plus anything others appended, into the state."""
        await pending
        await self._refresh()

    async def _ensure_lease(self) -> None:
        async with self.journal.engine.begin() as conn:
            held = await leases.renew(conn, self.run_id, self.committer.fence, self.settings.lease_seconds)
        if not held:
            raise LeaseLost(f"the lease of run {self.run_id} was lost before a model call")

    async def _refresh(self) -> None:
        async with self.journal.engine.connect() as conn:
            new_events = await log.read(conn, self.run_id, after=self.state.last_seq)
        rebuild(self.run_id, new_events, self.state)

    async def _load_run(self) -> tuple[AgentSpec, datetime]:
        async with self.journal.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(runs.c.agent_spec, runs.c.created_at).where(runs.c.id == self.run_id)
                )
            ).one()
        return AgentSpec.model_validate(row.agent_spec), row.created_at


def _model_wait(retry_state: object) -> float:
    outcome = getattr(retry_state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        return float(min(retry_after, 60.0))
    return float(wait_exponential_jitter(initial=0.5, max=20.0)(retry_state))  # type: ignore[arg-type]
