"""Steps one run while this brain holds its lease: call the model, run tools, commit, repeat.

Every decision is taken from the state rebuilt from the log, and every outcome is committed before
the next decision, so a crash at any point costs at most the uncommitted step. When the run needs a
person, the caller or a child run, it commits `run.waiting` and the brain lets go of it entirely.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.brain.budget import Budget, elapsed
from services.brain.ceilings import MonthlyCeilings
from services.brain.children import Children
from services.brain.committer import StepCommitter
from services.brain.context import NextAction, RunState, rebuild
from services.brain.dispatch import RunScope, ToolDispatcher
from services.brain.environment import RunEnvironment, resolve
from services.brain.lease_keeper import LeaseKeeper
from services.brain.models import ModelProvider, ModelRequest, ModelResponse
from services.brain.providers import ProviderPool
from services.brain.sandbox_claim import SandboxClaim
from services.brain.tool_specs import tool_specs
from services.brain.triage import Answer, Ask, Dispatch, Spawn, Wait, refusal, triage
from services.core import events as event_log
from services.core import runs as run_store
from services.core import schemas
from services.core.agents import AgentSpec
from services.core.db.engine import autocommit
from services.core.errors import InfrastructureError, ModelError, Unstorable
from services.core.journal import Journal
from services.core.settings import Settings
from services.core.status import TERMINAL_STATUSES, RunStatus

logger = logging.getLogger(__name__)


class RunStepper:
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        dispatcher: ToolDispatcher,
        providers: ProviderPool,
        lease: LeaseKeeper,
        cached: RunState | None = None,
        sandbox: SandboxClaim | None = None,
        ceilings: MonthlyCeilings | None = None,
    ) -> None:
        """`cached` is this run's state as a previous drive left it; it is continued from its seq.
        `sandbox` is the run's claim on one of its tenant's sandboxes, if its tenant limits them.
        `ceilings` checks the tenant's monthly quotas before each model call (none: unchecked)."""
        self.settings = settings
        self.journal = journal
        self.dispatcher = dispatcher
        self.providers = providers
        self.children = Children(settings, journal)
        self.lease = lease
        self.ceilings = ceilings
        self.run_id = lease.run_id
        self.fence = lease.fence
        self.committer = StepCommitter(journal, lease.run_id, lease.fence)
        self.state = cached or RunState(run_id=lease.run_id)
        self.sandbox = sandbox
        self.inputs: run_store.SteppingInputs | None = None
        self.environment: RunEnvironment | None = None

    async def drive(self) -> None:
        """Step until the run has nothing left to do now (finished, idle, or waiting).

        A run that ends (or has ended) lets go of its sandbox at once: nothing it started keeps running.
        """
        inputs = await self._load_run()
        spec = AgentSpec.model_validate(inputs.agent_spec)
        overrides = dict(inputs.budget or {})
        provider = self.providers.for_agent(spec)
        await self._refresh()
        try:
            while (action := self.state.next_action()) is not NextAction.IDLE:
                if self.state.status == RunStatus.QUEUED:
                    # Also mid-drive: a message can reopen the run between two of our commits.
                    await self._commit(self.committer.start())
                    continue
                if action is NextAction.CALL_MODEL:
                    budget = Budget.effective(spec, overrides, self.state.budget_raises)
                    if self._past_ceiling(inputs):
                        ceiling = self.settings.ceilings_for(inputs.tenant_id).run_wall_time_seconds
                        message = f"the run reached the wall-time ceiling of {ceiling:g}s"
                        await self._commit(self.committer.fail("wall_time_ceiling", message))
                        continue
                    reached = budget.reached(self.state, inputs.created_at)
                    if reached is None and self.ceilings is not None:
                        reached = await self.ceilings.reached(inputs.tenant_id)
                    if reached is not None:
                        await self._wait(reached)
                        continue
                await self._take(action, spec, provider)
        except (InfrastructureError, Unstorable) as error:
            # Unstorable: retrying the same commit can never succeed, so the run ends with a clear event.
            logger.warning("run %s failed: %s", self.run_id, error.message)
            await self._commit(self.committer.fail(error.code, error.message))
        if self.state.status in TERMINAL_STATUSES:
            await self.dispatcher.release(self.state)

    def _past_ceiling(self, inputs: run_store.SteppingInputs) -> bool:
        ceiling = self.settings.ceilings_for(inputs.tenant_id).run_wall_time_seconds
        return elapsed(inputs.created_at) >= ceiling

    def _scope(self, spec: AgentSpec) -> RunScope:
        """Whose run this is, the top of its tree, and the wall time it has left."""
        inputs = self.inputs
        assert inputs is not None, "the run was loaded"
        overrides = dict(inputs.budget or {})
        budget = Budget.effective(spec, overrides, self.state.budget_raises)
        ceiling = self.settings.ceilings_for(inputs.tenant_id).run_wall_time_seconds
        left = budget.wall_time_left(inputs.created_at, ceiling)
        return RunScope(
            inputs.tenant_id,
            inputs.root_run_id,
            wall_time_left=left,
            sandbox=self.sandbox,
            environment=self.environment,
        )

    async def _take(self, action: NextAction, spec: AgentSpec, provider: ModelProvider) -> None:
        if action is NextAction.CALL_MODEL:
            seen_upto = self.state.last_seq
            response = await self._call_model(spec, provider)
            if response is not None:
                price = self.settings.model_prices.get(spec.model)
                cost = price.cost(response.usage.input_tokens, response.usage.output_tokens) if price else 0.0
                await self._commit(
                    self.committer.model_response(
                        spec.model, response, self.state.workspace_snapshot, cost, context_seq=seen_upto
                    )
                )
                if self.ceilings is not None and self.inputs is not None:
                    tokens = response.usage.input_tokens + response.usage.output_tokens
                    self.ceilings.spent(self.inputs.tenant_id, tokens, cost)
        elif action is NextAction.RUN_TOOL:
            await self._run_tool(spec)
        elif action is NextAction.INTERRUPT_TOOLS:
            results = [
                refusal(call, "interrupted", "interrupted by the user")
                for call in self.state.pending.values()
            ]
            await self._commit(self.committer.tool_results(results))
        elif action is NextAction.PAUSE:
            await self._wait({"type": "interrupt"})
        elif action is NextAction.FINISH:
            artifacts = await self.dispatcher.workspace_artifacts(self.state)
            await self._commit(self.committer.complete(self.state.final_text or "", artifacts))

    async def _run_tool(self, spec: AgentSpec) -> None:
        decision = triage(self.state, spec)
        if isinstance(decision, Wait):
            await self._wait(decision.waiting_for)
        elif isinstance(decision, Answer):
            await self._commit(self.committer.tool_results([decision.result]))
        elif isinstance(decision, Spawn):
            await self.children.spawn(self.run_id, decision.calls, self.fence)
            await self._refresh()
            if self.state.status == RunStatus.WAITING:
                await self.dispatcher.release(self.state)
        elif isinstance(decision, Ask):
            await self._ask(decision)
        elif isinstance(decision, Dispatch):
            outcome = await self.dispatcher.run(self.state, decision.call, spec, self._scope(spec))
            try:
                await self._commit(self.committer.tool_result(outcome.result, outcome.sandbox_events))
            except Unstorable as error:
                # Nothing was appended; the model learns that the result was lost, and the workspace
                # keeps the call's effect.
                why = f"the tool's result could not be stored: {error.message}"
                lost = refusal(decision.call, error.code, why)
                lost["snapshot"] = outcome.result.get("snapshot")
                await self._commit(self.committer.tool_result(lost, outcome.sandbox_events))

    async def _ask(self, ask: Ask) -> None:
        """Wait for the person, unless the model's answer schema is refused (a tool error it can fix)."""
        if ask.schema is not None:
            try:
                # Checking a large schema takes a while; other runs of this brain keep stepping.
                await asyncio.to_thread(schemas.check, ask.schema, schemas.SchemaLimits.of(self.settings))
            except schemas.SchemaRefused as refused:
                message = f"ask_user 'schema' was refused: {refused.message}"
                await self._commit(self.committer.tool_results([refusal(ask.call, "invalid_input", message)]))
                return
        await self._wait(ask.waiting_for)

    async def _wait(self, waiting_for: dict[str, Any]) -> None:
        """Park the run: nothing (no brain, lease or sandbox process) is held while it waits."""
        await self._commit(self.committer.wait(waiting_for))
        await self.dispatcher.release(self.state)

    async def _call_model(self, spec: AgentSpec, provider: ModelProvider) -> ModelResponse | None:
        request = ModelRequest(
            model=spec.model, system=spec.system, messages=tuple(self.state.messages), tools=tool_specs(spec)
        )
        # A brain that lost its lease must not call the model for a step another brain may own.
        await self.lease.ensure()
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

    async def _commit(self, pending: Awaitable[list[event_log.Event]]) -> None:
        """Await a commit and fold what it appended into the state.

        When nothing else was appended since our last read, the appended events are all there is
        to fold; otherwise (a message, an interrupt) the gap is read from the log.
        """
        appended = await pending
        if appended and appended[0].seq == self.state.last_seq + 1:
            rebuild(self.run_id, appended, self.state)
        else:
            await self._refresh()

    async def _refresh(self) -> None:
        async with autocommit(self.journal.engine).connect() as conn:
            new_events = await event_log.read(conn, self.run_id, after=self.state.last_seq)
        rebuild(self.run_id, new_events, self.state)

    async def _load_run(self) -> run_store.SteppingInputs:
        """The run's inputs, and its environment version resolved once for the drive's calls."""
        async with autocommit(self.journal.engine).connect() as conn:
            self.inputs = inputs = await run_store.stepping_inputs(conn, self.run_id)
            if inputs.environment is not None:
                environment_id, version = inputs.environment
                self.environment = await resolve(
                    conn, self.settings, inputs.tenant_id, environment_id, version
                )
        return inputs


def _model_wait(retry_state: object) -> float:
    outcome = getattr(retry_state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        return float(min(retry_after, 60.0))
    return float(wait_exponential_jitter(multiplier=0.5, max=20.0)(retry_state))  # type: ignore[arg-type]
