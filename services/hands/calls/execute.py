"""Executes one ExecuteRequest end to end, with its effect on /workspace applied once.

Under the run's lock: a call already in the ledger is replayed without running. Otherwise, with a
slot (slots.py shares them fairly): the run's sandbox (created lazily, with the workspace size the run
asks for, up to the worker's ceiling) is brought to the call's base snapshot, the tool runs, a
mutating tool's workspace is snapshotted (whatever the tool's outcome; a workspace above the run's
storage budget makes the call a tool error and is undone), and the result is recorded. The restore
and the snapshot have a deadline of their own, apart from the tool's timeout; Progress events tell
the caller which phase runs and how long it may take.
What the sandbox's /workspace holds is its Workspace's to know (workspace/state.py). A lost sandbox's
call is not recorded: it runs again from its base on a fresh sandbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING

import jsonschema

from services.core import metrics
from services.core.errors import InfrastructureError, InvalidRequest, SandboxLost
from services.core.settings import Ceilings
from services.hands.calls.runner import call_timeout, run_tool
from services.hands.calls.slots import Share, Slots
from services.hands.calls.toolcall import ToolCall, ToolOutcome, lost, unsaved, with_skipped
from services.hands.contract.api import (
    QUEUED,
    RESTORING,
    RUNNING,
    SANDBOX_LOST,
    SNAPSHOTTING,
    ExecuteRequest,
    ExecuteResult,
    OutputChunk,
    Progress,
)
from services.hands.contract.manifest import EMPTY_SNAPSHOT, is_sha256
from services.hands.contract.profile import SandboxProfile
from services.hands.contract.tools import READ_ONLY_TOOLS, TOOL_SCHEMAS, input_schemas
from services.hands.fleet.pool import Assignment, SandboxPool
from services.hands.sandbox import SandboxDriver
from services.hands.workspace.ledger import CallLedger
from services.hands.workspace.snapshots import SnapshotRefused, Snapshots

if TYPE_CHECKING:
    from services.hands.egress.gate import Egress

# While a call waits for a slot, the worker says so this often, and again within the deadline.
QUEUE_BEAT = 5.0
QUEUE_DEADLINE = 3 * QUEUE_BEAT


class Calls:
    """The worker's call path: each ExecuteRequest run once, from its base, on the run's sandbox."""

    def __init__(
        self,
        driver: SandboxDriver,
        pool: SandboxPool,
        slots: Slots,
        snapshots: Snapshots,
        ledger: CallLedger,
        *,
        default_timeout: float,
        output_cap: int,
        workspace_size: int = 1024**3,
        workspace_max_size: int | None = None,
        snapshot_timeout: float = 1800.0,
        run_share: float = 1.0,
        tenant: str = "default",
        ceilings: Callable[[str], Ceilings] = lambda tenant: Ceilings(),
        egress: Egress | None = None,
    ) -> None:
        """A call gets the workspace size it asks for, up to `workspace_max_size`, else `workspace_size`.
        `tenant` is whose calls come without one; `ceilings` gives a tenant's ceilings; `egress`, the
        decisions of networked sandboxes' proxy for their results."""
        self._driver = driver
        self._pool = pool
        self._slots = slots
        self._snapshots = snapshots
        self._ledger = ledger
        self._default_timeout = default_timeout
        self._output_cap = output_cap
        self._workspace_size = workspace_size
        self._workspace_max_size = workspace_max_size or workspace_size
        self._snapshot_timeout = snapshot_timeout
        self._run_share = run_share
        self._tenant = tenant
        self._ceilings = ceilings
        self._egress = egress

    async def execute(
        self, request: ExecuteRequest
    ) -> AsyncGenerator[OutputChunk | ExecuteResult | Progress, None]:
        """Stream the call's progress and output chunks, then its ExecuteResult. Raises InvalidRequest
        before any work."""
        started = time.perf_counter()
        result: ExecuteResult | None = None
        try:
            async with aclosing(self._execute(request)) as items:
                async for item in items:
                    if isinstance(item, ExecuteResult):
                        result = item
                    yield item
        finally:
            if result is None or not result.replayed:
                # A tool name the brain did not check must not become a label value of its own.
                tool = request.tool if request.tool in TOOL_SCHEMAS else "unknown"
                ok = metrics.outcome(result is not None and result.ok)
                metrics.HANDS_TOOL_CALL_SECONDS.labels(tool, ok).observe(time.perf_counter() - started)

    async def _execute(
        self, request: ExecuteRequest
    ) -> AsyncGenerator[OutputChunk | ExecuteResult | Progress, None]:
        validate(request)
        tenant = request.tenant or self._tenant
        ceilings = self._ceilings(tenant)
        timeout = call_timeout(
            request.tool,
            request.input,
            request.timeout_seconds,
            self._default_timeout,
            ceiling=ceilings.tool_timeout_seconds,
        )
        run_id = request.run_id
        async with self._pool.locked(run_id):
            recorded = await self._ledger.get(run_id, request.call_id)
            if recorded is not None:
                yield replace(recorded, replayed=True)
                return
            ticket = self._slots.ticket(self._shares(request, tenant, ceilings))
            result: ExecuteResult | None = None
            try:
                while not await ticket.granted(within=QUEUE_BEAT):
                    yield Progress(QUEUED, QUEUE_DEADLINE)
                async with aclosing(self._run(request, tenant, timeout)) as items:
                    async for item in items:
                        if isinstance(item, ExecuteResult):
                            result = item
                        else:
                            yield item
            finally:
                # Free before the result is out, so whoever reads it finds the slot free.
                ticket.release()
            if result is None:
                raise RuntimeError("the call ended without a result")
            if result.error != SANDBOX_LOST:
                kept = await self._ledger.put(run_id, request.call_id, result)
                result = result if kept == result else replace(kept, replayed=True)
            yield result

    def _shares(self, request: ExecuteRequest, tenant: str, ceilings: Ceilings) -> tuple[Share, ...]:
        tree = request.root_run_id or request.run_id
        return (
            self._slots.share(f"tree:{tree}", self._run_share),
            self._slots.share(f"tenant:{tenant}", ceilings.slot_share),
        )

    async def _run(
        self, request: ExecuteRequest, tenant: str, timeout: float
    ) -> AsyncGenerator[OutputChunk | ExecuteResult | Progress, None]:
        """The call with its slot held: base, tool, snapshot; its result comes last."""
        run_id, base = request.run_id, request.base_snapshot or EMPTY_SNAPSHOT
        started = time.monotonic()
        size = self._size_of(request)
        if not self._pool.at(run_id, base):
            yield Progress(RESTORING, self._snapshot_timeout)
        sandbox = await self._at_base(run_id, base, size, tenant, request.profile)
        if self._egress is not None and request.profile is not None:
            self._egress.set_budget(sandbox.sandbox_id, request.profile.network.byte_budget)
        mutating = request.tool not in READ_ONLY_TOOLS
        if mutating:
            sandbox.workspace.change()
        yield Progress(RUNNING, timeout)
        call = ToolCall(sandbox.sandbox_id, request.tool, request.input, timeout, self._output_cap)
        outcome: ToolOutcome | None = None
        try:
            async with aclosing(run_tool(self._driver, call)) as items:
                async for item in items:
                    if isinstance(item, ToolOutcome):
                        outcome = item
                    else:
                        yield item
        finally:
            self._pool.touch(run_id)
        if outcome is None:
            raise RuntimeError("the tool run ended without an outcome")
        # What the proxy decided during the call (and since the run's previous result) goes with it.
        egress = await self._egress.drain(sandbox.sandbox_id) if self._egress is not None else ()
        after = base
        if mutating and outcome.error != SANDBOX_LOST:
            yield Progress(SNAPSHOTTING, self._snapshot_timeout)
            after, outcome = await self._snapshot_after(run_id, sandbox, base, outcome, size)
        if outcome.error == SANDBOX_LOST:
            await self._pool.discard(run_id)
        duration_ms = int((time.monotonic() - started) * 1000)
        yield replace(_result(outcome, sandbox, after, duration_ms), egress=egress)

    def _size_of(self, request: ExecuteRequest) -> int:
        """The run's workspace size, which is also its storage budget: what it asks, within the ceiling."""
        return min(request.workspace_bytes or self._workspace_size, self._workspace_max_size)

    async def _at_base(
        self, run_id: str, base: str, size: int, tenant: str, profile: SandboxProfile | None
    ) -> Assignment:
        """The run's sandbox, with /workspace restored to `base` unless it is known to be there."""
        default_size = None if size == self._workspace_size else size
        sandbox = await self._pool.ensure(run_id, default_size, tenant, profile)
        try:
            async with asyncio.timeout(self._snapshot_timeout):
                await sandbox.workspace.restore(self._snapshots, base)
        except TimeoutError:
            await self._pool.discard(run_id)
            raise InfrastructureError(
                f"restoring the workspace took longer than the snapshot deadline "
                f"({self._snapshot_timeout:g}s)",
                code="restore_timeout",
                retryable=False,
            ) from None
        except InfrastructureError:
            # A sandbox that could not be cleared or filled is not worth trusting: start afresh.
            await self._pool.discard(run_id)
            raise
        return sandbox

    async def _snapshot_after(
        self, run_id: str, sandbox: Assignment, base: str, outcome: ToolOutcome, budget: int
    ) -> tuple[str, ToolOutcome]:
        try:
            async with asyncio.timeout(self._snapshot_timeout):
                taken = await sandbox.workspace.capture(self._snapshots, budget=budget)
            return taken.snapshot_id, with_skipped(outcome, taken.skipped, taken.skipped_shown)
        except SandboxLost:
            return base, lost()
        except SnapshotRefused as refused:
            # The model learns why; the next call starts from the base again (the workspace is dirty).
            return base, unsaved(outcome, refused.message)
        except TimeoutError:
            # The sandbox may still be scanning: the next call gets a fresh one, restored from the base.
            await self._pool.discard(run_id)
            why = f"its snapshot took longer than the snapshot deadline ({self._snapshot_timeout:g}s)"
            return base, unsaved(outcome, why)


def _result(
    outcome: ToolOutcome, sandbox: Assignment, snapshot_after: str, duration_ms: int
) -> ExecuteResult:
    return ExecuteResult(
        ok=outcome.ok,
        output=outcome.output,
        exit_code=outcome.exit_code,
        error=outcome.error,
        error_message=outcome.error_message,
        truncated=outcome.truncated,
        duration_ms=duration_ms,
        sandbox_id=sandbox.sandbox_id,
        sandbox_created=sandbox.created,
        snapshot_after=snapshot_after,
        output_bytes=outcome.output_bytes,
    )


def validate(request: ExecuteRequest) -> None:
    """Check the request again at the worker's edge; the brain should already have done so."""
    if not request.run_id or not request.call_id:
        raise InvalidRequest("run_id and call_id are required")
    if request.base_snapshot is not None and not is_sha256(request.base_snapshot):
        raise InvalidRequest(f"base_snapshot {request.base_snapshot!r} is not a snapshot id")
    shapes = input_schemas(request.tool)
    if not shapes:
        raise InvalidRequest(f"unknown tool {request.tool!r}; known tools: {', '.join(TOOL_SCHEMAS)}")
    problems = [error.message for shape in shapes for error in _errors(request.input, shape)]
    # bash takes loopd's input or the toolset's: one shape that fits is enough.
    if len(problems) >= len(shapes):
        raise InvalidRequest(f"invalid input for {request.tool}: {problems[0]}")


def _errors(instance: object, schema: dict[str, object]) -> list[jsonschema.ValidationError]:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    return [] if error is None else [error]
