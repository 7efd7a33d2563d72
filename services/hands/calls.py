"""Executes one ExecuteRequest end to end: run lock, slot, lazy sandbox, tool run, result."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import jsonschema

from services.core.errors import InvalidRequest
from services.hands.api import SANDBOX_LOST, ExecuteRequest, ExecuteResult, OutputChunk
from services.hands.pool import SandboxPool
from services.hands.runner import call_timeout, run_tool
from services.hands.sandbox import SandboxDriver
from services.hands.slots import Slots
from services.hands.toolcall import ToolCall, ToolOutcome
from services.hands.tools import TOOL_SCHEMAS


class CallExecutor:
    def __init__(
        self,
        driver: SandboxDriver,
        pool: SandboxPool,
        slots: Slots,
        *,
        default_timeout: float,
        output_cap: int,
    ) -> None:
        self._driver = driver
        self._pool = pool
        self._slots = slots
        self._default_timeout = default_timeout
        self._output_cap = output_cap

    async def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        """Stream the call's output chunks, then its ExecuteResult. Raises InvalidRequest before any work."""
        validate(request)
        timeout = call_timeout(request.tool, request.input, request.timeout_seconds, self._default_timeout)
        async with self._pool.locked(request.run_id), self._slots:
            started = time.monotonic()
            lease = await self._pool.ensure(request.run_id)
            call = ToolCall(lease.sandbox_id, request.tool, request.input, timeout, self._output_cap)
            outcome: ToolOutcome | None = None
            try:
                async with aclosing(run_tool(self._driver, call)) as items:
                    async for item in items:
                        if isinstance(item, ToolOutcome):
                            outcome = item
                        else:
                            yield item
            finally:
                self._pool.touch(request.run_id)
            if outcome is None:
                raise RuntimeError("the tool run ended without an outcome")
            if outcome.error == SANDBOX_LOST:
                await self._pool.discard(request.run_id)
            yield ExecuteResult(
                ok=outcome.ok,
                output=outcome.output,
                exit_code=outcome.exit_code,
                error=outcome.error,
                error_message=outcome.error_message,
                truncated=outcome.truncated,
                duration_ms=int((time.monotonic() - started) * 1000),
                sandbox_id=lease.sandbox_id,
                sandbox_created=lease.created,
            )


def validate(request: ExecuteRequest) -> None:
    """Check the request again at the worker's edge; the brain should already have done so."""
    if not request.run_id:
        raise InvalidRequest("run_id is required")
    schema = TOOL_SCHEMAS.get(request.tool)
    if schema is None:
        raise InvalidRequest(f"unknown tool {request.tool!r}; known tools: {', '.join(TOOL_SCHEMAS)}")
    try:
        jsonschema.validate(request.input, schema["input_schema"])
    except jsonschema.ValidationError as exc:
        raise InvalidRequest(f"invalid input for {request.tool}: {exc.message}") from None
