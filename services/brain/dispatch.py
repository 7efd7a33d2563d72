"""Sends a run's tool calls to hands and turns each outcome into the events to commit.

Hands are reached through the Hands protocol, over gRPC or in process: whichever `connect` the brain
was built with.

Infrastructure failures (hands unreachable) are retried with backoff and jitter on another worker;
failures of the tool itself (non-zero exit, timeout, a lost sandbox) go back to the model as results.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import jsonschema
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from services.brain.call_attempts import CallAttempts
from services.brain.context import RunState, SandboxLocation
from services.brain.egress import egress_events
from services.brain.environment import RunEnvironment
from services.brain.models import ToolCall
from services.brain.models.openai import RAW_ARGUMENTS_KEY
from services.brain.sandbox_claim import SandboxClaim
from services.brain.stop_signal import wait_for_stop
from services.brain.tool_specs import sandbox_schema
from services.core import events as event_log
from services.core import metrics, payloads
from services.core.agents import AgentSpec
from services.core.artifacts import ArtifactStore
from services.core.bus import Bus
from services.core.errors import HandsStopping, HandsUnavailable, InfrastructureError, SandboxLost
from services.core.identity import hands_secret
from services.core.journal import Journal
from services.core.settings import Settings
from services.core.text import escape_name
from services.core.tools import Tool
from services.hands.contract import Connect, Hands, collect, grpc_connector
from services.hands.contract.api import (
    SANDBOX_LOST,
    TIMEOUT,
    ExecuteRequest,
    ExecuteResult,
    OutputChunk,
    ReleaseRequest,
)
from services.hands.contract.manifest import EMPTY_SNAPSHOT, decode
from services.hands.contract.tools import TOOL_SCHEMAS

logger = logging.getLogger(__name__)

PREVIEW_BYTES = 8 * 1024
# The result of a call that never ran because its tenant's runs held every sandbox of its quota.
SANDBOX_QUOTA = "sandbox_quota"
HANDS_POLL_SECONDS = 0.25

T = TypeVar("T")


@dataclass(frozen=True)
class RunScope:
    """What a call's limits depend on besides the agent spec: whose run it is, the top of its tree of
    sub-agents (hands shares its slots fairly between trees), and the wall time the run has left."""

    tenant: str
    root_run_id: str
    wall_time_left: float = math.inf
    # The run's claim on one of its tenant's sandboxes, for this drive; None: the run needs none.
    sandbox: SandboxClaim | None = None
    # The sandbox its environment version describes; None: the worker's default (no network).
    environment: RunEnvironment | None = None


@dataclass(frozen=True)
class ToolOutcome:
    """The events one tool call produced: sandbox changes first, then the result."""

    sandbox_events: list[event_log.NewEvent]
    result: dict[str, Any]


class ToolDispatcher:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        artifacts: ArtifactStore,
        journal: Journal,
        connect: Connect | None = None,
    ) -> None:
        """`connect` reaches the hands worker at an address the registry lists (over gRPC, with the
        stack's hands secret, unless given)."""
        self.settings = settings
        self.bus = bus
        self.artifacts = artifacts
        self.journal = journal
        self._connect = connect or grpc_connector(hands_secret(settings))
        self._clients: dict[str, Hands] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def run(
        self, state: RunState, call: ToolCall, spec: AgentSpec, scope: RunScope | None = None
    ) -> ToolOutcome:
        """Run one call on hands; `scope` defaults to a run of the settings' tenant without a parent."""
        started = time.perf_counter()
        ok = False
        try:
            done = await self._run(state, call, spec, scope or RunScope(self.settings.tenant, state.run_id))
            ok = bool(done.result["ok"])
            return done
        finally:
            # A name the model made up must not become a label value of its own.
            tool = call.name if call.name in TOOL_SCHEMAS else "unknown"
            seconds = time.perf_counter() - started
            metrics.BRAIN_TOOL_CALL_SECONDS.labels(tool, metrics.outcome(ok)).observe(seconds)

    async def _run(self, state: RunState, call: ToolCall, spec: AgentSpec, scope: RunScope) -> ToolOutcome:
        problem = validate_call(call, spec)
        if problem is not None:
            code, message = problem
            return ToolOutcome([], _result(call, ok=False, output=message, error=code, error_message=message))
        limit = CallLimit.of(call, spec, self.settings, scope)
        if limit.wall_time_out():
            return ToolOutcome([], await self._result_data(call, _out_of_wall_time(state)))
        refused = await self._claim_sandbox(state, scope, limit)
        if refused is not None:
            return ToolOutcome([], await self._result_data(call, refused))
        sandbox_events: list[event_log.NewEvent] = []
        excluded: dict[str, float] = {}  # address: when it failed this call
        policy = spec.retry
        attempts = CallAttempts(policy.max_attempts, self.settings.hands_wait_seconds)
        retrying = AsyncRetrying(
            stop=attempts,
            wait=wait_exponential_jitter(
                multiplier=policy.initial_backoff_seconds, max=policy.max_backoff_seconds
            ),
            retry=retry_if_exception(
                lambda error: isinstance(error, InfrastructureError) and error.retryable
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                location = await self._choose_hands(state, excluded, sandbox_events)
                if limit.wall_time_out():
                    result = _out_of_wall_time(state)
                    break
                try:
                    result = await self._execute(location, state, call, spec, limit, scope)
                except HandsUnavailable as error:
                    logger.info(
                        "call %s of run %s failed on hands at %s (%s); it is retried",
                        call.id,
                        state.run_id,
                        location[1],
                        error,
                    )
                    excluded[location[1]] = time.monotonic()
                    if state.sandbox is not None:
                        sandbox_events.append(_lost(state.sandbox.sandbox_id, _why_unavailable(error)))
                        state.sandbox = None
                    raise
                sandbox_events += self._sandbox_changes(state, location, result)
                sandbox_events += egress_events(call.id, result)
                if result.error == SANDBOX_LOST and not attempts.last():
                    # The workspace is restored from the call's starting snapshot on the retry, so
                    # re-running the call applies its effect once. A sandbox that keeps dying (the
                    # call itself may kill it) reaches the model as a tool error in the end.
                    raise SandboxLost(result.error_message or "the sandbox died during the call")
        return ToolOutcome(sandbox_events, await self._result_data(call, limit.explain(result)))

    async def _claim_sandbox(
        self, state: RunState, scope: RunScope, limit: CallLimit
    ) -> ExecuteResult | None:
        """Wait until the run holds one of its tenant's sandboxes (Quotas.max_sandboxes), for at most
        LOOPD_SANDBOX_QUOTA_WAIT_SECONDS and the wall time the run has left; None once it does, else
        the result of a call that did not run. A person's interrupt or cancel ends the wait too."""
        claim = scope.sandbox
        if claim is None or await claim.try_now():
            return None
        within = min(self.settings.sandbox_quota_wait_seconds, limit.wall_time_left())
        claimed = await self._unless_stopped(claim.wait(within), state)
        if isinstance(claimed, ExecuteResult):
            return claimed
        if claimed:
            return None
        if limit.wall_time_out():
            return _out_of_wall_time(state)
        return _no_sandbox(claim.limit, within)

    async def workspace_artifacts(self, state: RunState) -> list[dict[str, Any]]:
        """The files of the run's last workspace snapshot, whose blobs are already in the artifact store.

        Read from the snapshot rather than a live sandbox, so a run that ends after its hands worker
        died still gets exactly the files its committed tool calls left.
        """
        if state.workspace_snapshot in (None, EMPTY_SNAPSHOT):
            return []  # the empty workspace has no manifest blob
        manifest = decode(await self.artifacts.get(state.workspace_snapshot))
        # Names that are not UTF-8 are escaped reversibly (see core/text.py), so the log can hold them.
        return [{"path": escape_name(f.path), "size": f.size, "sha256": f.sha256} for f in manifest.files()]

    async def release(self, state: RunState) -> None:
        """Free the run's sandbox on every worker that has one for it.

        The log names the sandbox only once a call's result is committed; a sandbox made for a call
        that was cut short is found through the registry, where its worker lists it.
        """
        addresses = {h.address for h in await self.bus.list_hands() if state.run_id in h.sandboxes}
        if state.sandbox is not None:
            addresses.add(state.sandbox.address)
        for address in addresses:
            try:
                client = await self._client(address)
                await client.release(ReleaseRequest(state.run_id))
            except HandsUnavailable:
                logger.info("hands at %s is gone; its reaper or restart frees run %s", address, state.run_id)

    async def _choose_hands(
        self, state: RunState, excluded: dict[str, float], sandbox_events: list[event_log.NewEvent]
    ) -> tuple[str, str]:
        """The worker holding the run's sandbox if it is alive, else the one with most free slots, then
        fewest sandboxes, ties broken at random: brains read the registry as of the workers' last
        heartbeats, and a fixed tie-break would send every run that starts meanwhile to one worker.

        `excluded` holds addresses that just failed: a restarted worker keeps its id but gets a new
        address, so it is welcome again at once. A draining worker (scale-in, a rolling update) is
        passed over: it would hand the call back, and the run's workspace is in its snapshots. An
        empty pool is waited for (workers restart or scale up), up to `hands_wait_seconds`, rather
        than spending the run's retry budget.

        A failed address is passed over only for the registry's TTL: a dead worker's entry is gone by
        then, so one still listed is heartbeating, and what failed was the network between us.
        Passing it over for good left a brain that a partition had cut off from every worker waiting
        out `hands_wait_seconds` on each attempt after the link healed (tests/faults/test_partitions.py).
        """
        deadline = time.monotonic() + self.settings.hands_wait_seconds

        def passed_over(address: str) -> bool:
            failed_at = excluded.get(address)
            return failed_at is not None and time.monotonic() - failed_at < self.settings.hands_ttl_seconds

        while True:
            listed = [h for h in await self.bus.list_hands() if not passed_over(h.address)]
            alive = [h for h in listed if not h.draining]
            if alive or time.monotonic() > deadline:
                break
            await asyncio.sleep(HANDS_POLL_SECONDS)
        if state.sandbox is not None:
            holder = next((h for h in listed if h.hands_id == state.sandbox.hands_id), None)
            if holder is not None and not holder.draining:
                return holder.hands_id, holder.address
            why = "hands worker is stopping" if holder is not None else "hands worker left the pool"
            sandbox_events.append(_lost(state.sandbox.sandbox_id, why))
            state.sandbox = None
        if not alive:
            raise HandsUnavailable(
                f"no hands worker was available for {self.settings.hands_wait_seconds:.0f}s", code="no_hands"
            )
        best = max(alive, key=lambda h: (h.slots_free, -len(h.sandboxes), random.random()))
        return best.hands_id, best.address

    async def _execute(
        self,
        location: tuple[str, str],
        state: RunState,
        call: ToolCall,
        spec: AgentSpec,
        limit: CallLimit,
        scope: RunScope,
    ) -> ExecuteResult:
        run_id = state.run_id
        environment = scope.environment
        request = ExecuteRequest(
            run_id=run_id,
            # Some OpenAI-compatible servers reuse ids across turns; the step makes the hands
            # idempotency key unique within the run, and stays the same for every brain.
            call_id=f"step{state.model_calls}-{call.id}",
            tool=call.name,
            input=call.input,
            timeout_seconds=limit.timeout(),
            base_snapshot=state.workspace_snapshot,
            workspace_bytes=(environment and environment.workspace_bytes) or spec.limits.workspace_bytes,
            tenant=scope.tenant,
            root_run_id=scope.root_run_id,
            profile=environment.for_call(state.egress_bytes) if environment is not None else None,
        )

        async def stream_chunk(chunk: OutputChunk) -> None:
            await self.journal.publish_live(
                run_id,
                {
                    "type": event_log.TOOL_OUTPUT,
                    "at": datetime.now(UTC).isoformat(),
                    "data": payloads.ToolOutput(call_id=call.id, stream=chunk.stream, data=chunk.data).dump(),
                },
            )

        try:
            client = await self._client(location[1])
            return await self._unless_stopped(collect(client, request, on_chunk=stream_chunk), state)
        except HandsUnavailable:
            stale = self._clients.pop(location[1], None)
            if stale is not None:
                await stale.aclose()
            raise

    async def _unless_stopped(self, execution: Awaitable[T], state: RunState) -> T | ExecuteResult:
        """Run the call, but cut it short if a person interrupts or cancels the run meanwhile.

        Cancelling the gRPC call makes hands kill what the call started; its partial changes to the
        workspace are dropped, because the next call starts from the snapshot this one started from.
        """
        running = asyncio.ensure_future(execution)
        stop = asyncio.ensure_future(wait_for_stop(self.journal, state.run_id, state.last_seq))
        try:
            await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done() and stop.done() and stop.exception() is None:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                return _stopped(state, stop.result())
            return await running
        finally:
            for task in (running, stop):
                task.cancel()
            await asyncio.gather(stop, return_exceptions=True)

    async def _client(self, address: str) -> Hands:
        """One long-lived connection per hands address, reused by every run on this brain."""
        client = self._clients.get(address)
        if client is None:
            client = await self._connect(address)
            self._clients[address] = client
        return client

    def _sandbox_changes(
        self, state: RunState, location: tuple[str, str], result: ExecuteResult
    ) -> list[event_log.NewEvent]:
        changes: list[event_log.NewEvent] = []
        if result.sandbox_created:
            if state.sandbox is not None and state.sandbox.sandbox_id != result.sandbox_id:
                changes.append(_lost(state.sandbox.sandbox_id, "replaced by a fresh sandbox"))
            provisioned = payloads.SandboxProvisioned(
                sandbox_id=result.sandbox_id, hands_id=location[0], address=location[1]
            )
            changes.append(event_log.NewEvent.of(provisioned))
            state.sandbox = SandboxLocation(location[0], location[1], result.sandbox_id)
        if result.error == "sandbox_lost":
            changes.append(_lost(result.sandbox_id, result.error_message or "sandbox died during the call"))
            state.sandbox = None
        return changes

    async def _result_data(self, call: ToolCall, result: ExecuteResult) -> dict[str, Any]:
        """The tool.result payload; output too large for the event, or binary, goes to the artifact store.

        Binary output is stored as its exact bytes and the event keeps their escaped rendering.
        """
        output = result.output
        output_ref = None
        encoded = output.encode("utf-8", errors="replace")
        exact = result.output_bytes
        if exact is not None or len(encoded) > self.settings.inline_output_limit:
            ref = await self.artifacts.put(exact if exact is not None else encoded)
            output_ref = {"sha256": ref.sha256, "size": ref.size}
        if len(encoded) > self.settings.inline_output_limit:
            output = encoded[:PREVIEW_BYTES].decode("utf-8", errors="ignore")
        binary = {"binary": True} if exact is not None else {}
        return _result(
            call,
            ok=result.ok,
            output=output,
            output_ref=output_ref,
            exit_code=result.exit_code,
            error=result.error,
            error_message=result.error_message,
            truncated=result.truncated,
            duration_ms=result.duration_ms,
            snapshot=result.snapshot_after,
            replayed=result.replayed,
            **binary,
        )


def validate_call(call: ToolCall, spec: AgentSpec) -> tuple[str, str] | None:
    """A (code, message) the model can act on when it asked for a tool it may not use, or gave bad input."""
    schema = sandbox_schema(spec, call.name)
    if call.name not in spec.tools or schema is None:
        return "unknown_tool", f"unknown tool {call.name!r}; available tools: {', '.join(spec.tools)}"
    if RAW_ARGUMENTS_KEY in call.input:
        return (
            "invalid_input",
            f"the arguments for {call.name} were not a JSON object: {call.input[RAW_ARGUMENTS_KEY]!r}",
        )
    try:
        jsonschema.validate(call.input, schema["input_schema"])
    except jsonschema.ValidationError as error:
        return "invalid_input", f"invalid input for {call.name}: {error.message}"
    return None


def tool_timeout(call: ToolCall, spec: AgentSpec, settings: Settings, ceiling: float) -> float:
    """The call's timeout: bash's own, else the agent's, else the default; never above the ceiling."""
    requested = call.input.get("timeout") if call.name == Tool.BASH else None
    milliseconds = call.input.get("timeout_ms") if call.name == Tool.BASH else None
    if isinstance(milliseconds, int) and not isinstance(milliseconds, bool) and milliseconds > 0:
        requested = milliseconds / 1000
    limit = min(spec.limits.tool_timeout_seconds or settings.tool_timeout_seconds, ceiling)
    if isinstance(requested, int | float) and not isinstance(requested, bool) and requested > 0:
        return float(min(requested, limit))
    return float(limit)


@dataclass(frozen=True)
class CallLimit:
    """How long one call may run: its tool timeout, cut to the wall time the run has left."""

    tool_timeout: float
    wall_time_ends: float  # on the monotonic clock

    @classmethod
    def of(cls, call: ToolCall, spec: AgentSpec, settings: Settings, scope: RunScope) -> CallLimit:
        ceiling = settings.ceilings_for(scope.tenant).tool_timeout_seconds
        return cls(tool_timeout(call, spec, settings, ceiling), time.monotonic() + scope.wall_time_left)

    def wall_time_left(self) -> float:
        return self.wall_time_ends - time.monotonic()

    def wall_time_out(self) -> bool:
        return self.wall_time_left() <= 0

    def timeout(self) -> float:
        return max(min(self.tool_timeout, self.wall_time_ends - time.monotonic()), 0.001)

    def explain(self, result: ExecuteResult) -> ExecuteResult:
        """A timeout that the run's wall time set says so, for the model and the log."""
        if result.error != TIMEOUT or self.wall_time_ends - time.monotonic() > 0.5:
            return result
        note = "the run's wall time ran out during the call; every process it started was killed"
        return replace(result, output=f"{result.output}\n[{note}]", error_message=note)


def _out_of_wall_time(state: RunState) -> ExecuteResult:
    message = "the run's wall time ran out before the call could start"
    return ExecuteResult(
        ok=False,
        output=f"error: {message}",
        exit_code=None,
        error=TIMEOUT,
        error_message=message,
        truncated=False,
        duration_ms=0,
        sandbox_id=state.sandbox.sandbox_id if state.sandbox else "",
        sandbox_created=False,
    )


def _no_sandbox(limit: int | None, waited: float) -> ExecuteResult:
    message = (
        f"the call did not run: the tenant's runs held all {limit} of its sandboxes for {waited:g}s; "
        "try again later"
    )
    return ExecuteResult(
        ok=False,
        output=f"error: {message}",
        exit_code=None,
        error=SANDBOX_QUOTA,
        error_message=message,
        truncated=False,
        duration_ms=int(waited * 1000),
        sandbox_id="",
        sandbox_created=False,
    )


def _stopped(state: RunState, why: str) -> ExecuteResult:
    reason = "interrupted by the user" if why == event_log.USER_INTERRUPT else "the run was cancelled"
    return ExecuteResult(
        ok=False,
        output=f"the call was stopped: {reason}",
        exit_code=None,
        error="interrupted",
        error_message=reason,
        truncated=False,
        duration_ms=0,
        sandbox_id=state.sandbox.sandbox_id if state.sandbox else "",
        sandbox_created=False,
    )


def _why_unavailable(error: HandsUnavailable) -> str:
    return "hands worker is stopping" if isinstance(error, HandsStopping) else "hands worker unreachable"


def _lost(sandbox_id: str, reason: str) -> event_log.NewEvent:
    return event_log.NewEvent.of(payloads.SandboxLost(sandbox_id=sandbox_id, reason=reason))


def _result(call: ToolCall, *, ok: bool, output: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "call_id": call.id,
        "name": call.name,
        "ok": ok,
        "output": output,
        "output_ref": None,
        "exit_code": None,
        "error": None,
        "error_message": None,
        "truncated": False,
        "duration_ms": 0,
    }
    base.update(fields)
    return base
