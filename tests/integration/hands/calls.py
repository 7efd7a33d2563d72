"""Shorthands for driving a hands worker from tests."""

from __future__ import annotations

import uuid
from typing import Any

from services.hands.client import ExecuteRequest, ExecuteResult, HandsClient


def new_run() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def request(run_id: str, tool: str, args: dict[str, Any], timeout: float = 15.0) -> ExecuteRequest:
    return ExecuteRequest(
        run_id=run_id, call_id=uuid.uuid4().hex, tool=tool, input=args, timeout_seconds=timeout
    )


async def call(
    hands: HandsClient, run_id: str, tool: str, timeout: float = 15.0, **args: Any
) -> ExecuteResult:
    return await hands.execute_collect(request(run_id, tool, args, timeout))


async def bash(hands: HandsClient, run_id: str, command: str, timeout: float = 15.0) -> ExecuteResult:
    return await call(hands, run_id, "bash", timeout, command=command)
