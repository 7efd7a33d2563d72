"""Shorthands for driving a hands worker from tests.

Like the brain, the helpers chain a run's calls: each call starts from the snapshot the run's
previous call (made through them) ended at.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from services.hands.contract.client import ExecuteRequest, ExecuteResult, HandsClient

# The hands secret test workers are started with; clients present it on every call.
HANDS_SECRET = f"test-{uuid.uuid4().hex}"
_latest: dict[str, str] = {}


def new_run() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def request(run_id: str, tool: str, args: dict[str, Any], timeout: float = 15.0) -> ExecuteRequest:
    """A new call of the run, starting from the run's latest snapshot."""
    return ExecuteRequest(
        run_id=run_id,
        call_id=uuid.uuid4().hex,
        tool=tool,
        input=args,
        timeout_seconds=timeout,
        base_snapshot=_latest.get(run_id),
    )


def starting_at(call: ExecuteRequest, snapshot: str | None) -> ExecuteRequest:
    """The same call, starting from another snapshot."""
    return replace(call, base_snapshot=snapshot)


async def send(hands: HandsClient, call: ExecuteRequest) -> ExecuteResult:
    """Run a call to its end and remember where it left the run's workspace."""
    result = await hands.execute_collect(call)
    if result.snapshot_after is not None:
        _latest[call.run_id] = result.snapshot_after
    return result


async def call(
    hands: HandsClient, run_id: str, tool: str, timeout: float = 15.0, **args: Any
) -> ExecuteResult:
    return await send(hands, request(run_id, tool, args, timeout))


async def bash(hands: HandsClient, run_id: str, command: str, timeout: float = 15.0) -> ExecuteResult:
    return await call(hands, run_id, "bash", timeout, command=command)
