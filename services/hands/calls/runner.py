"""Runs one validated tool call in a sandbox: bash streams its output, file tools go to files.py and
the Managed Agents toolset's to toolset.py."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from services.core.errors import InvalidRequest
from services.core.tools import Tool
from services.hands.calls.files import run_file_tool
from services.hands.calls.toolcall import OutputCollector, ToolCall, ToolOutcome, finished, lost, timed_out
from services.hands.calls.toolset import TOOLSET_FILE_TOOLS, run_toolset_tool
from services.hands.contract.api import OutputChunk
from services.hands.contract.tools import TOOL_SCHEMAS
from services.hands.sandbox import ExecExit, ExecRequest, SandboxDriver


def call_timeout(
    tool: str, args: Mapping[str, Any], requested: float, default: float, *, ceiling: float = math.inf
) -> float:
    """The brain's timeout (or the worker default), lowered by a bash call's own `timeout`, and never
    above the tenant's ceiling, whatever the caller asked."""
    timeout = min(requested if requested > 0 else default, ceiling)
    own = args.get("timeout") if tool == Tool.BASH else None
    milliseconds = args.get("timeout_ms") if tool == Tool.BASH else None
    if isinstance(milliseconds, int) and not isinstance(milliseconds, bool) and milliseconds > 0:
        own = milliseconds / 1000
    if isinstance(own, int | float) and not isinstance(own, bool) and 0 < own < timeout:
        return float(own)
    return timeout


async def run_tool(driver: SandboxDriver, call: ToolCall) -> AsyncGenerator[OutputChunk | ToolOutcome, None]:
    """Yield output chunks while the call runs, then exactly one ToolOutcome."""
    if call.tool not in TOOL_SCHEMAS:
        raise InvalidRequest(f"unknown tool {call.tool!r}; known tools: {', '.join(TOOL_SCHEMAS)}")
    if call.tool in TOOLSET_FILE_TOOLS:
        yield await run_toolset_tool(driver, call)
        return
    if call.tool != Tool.BASH:
        yield await run_file_tool(driver, call)
        return
    command = call.args.get("command")
    if command is None and call.args.get("restart"):
        yield ToolOutcome(ok=True, output="every call starts a fresh shell; there is nothing to restart")
        return
    if not isinstance(command, str):
        raise InvalidRequest("bash needs a string `command`")
    collector = OutputCollector(call.output_cap)
    end = ExecExit(exit_code=None)
    request = ExecRequest(
        argv=("bash", "-c", command), timeout=call.timeout_seconds, output_cap=call.output_cap
    )
    async with aclosing(driver.exec(call.sandbox_id, request)) as events:
        async for event in events:
            if isinstance(event, ExecExit):
                end = event
            elif text := collector.add(event.stream, event.data):
                yield OutputChunk(stream=event.stream, data=text)
    if end.lost:
        yield lost(collector)
    elif end.timed_out:
        yield timed_out(collector, call.timeout_seconds)
    else:
        yield finished(collector, end.exit_code)
