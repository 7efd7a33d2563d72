"""On SIGUSR1 a brain logs, for every task it runs, the chain of awaits it is suspended in: what a stuck
run waits on."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from typing import Any

logger = logging.getLogger(__name__)


def install_task_dump(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)


def _dump_tasks() -> None:
    report = io.StringIO()
    for task in asyncio.all_tasks():
        state = "cancelling" if task.cancelling() else "pending"
        report.write(f"--- {task.get_name()} ({state}):\n")
        for line in await_chain(task.get_coro()):
            report.write(f"  {line}\n")
    logger.warning("tasks:\n%s", report.getvalue())


def await_chain(awaitable: Any) -> list[str]:
    """Where a suspended coroutine is, frame by frame down to the future it waits for.

    A task's own stack shows only its outermost coroutine; the inner ones hang off `cr_await`.
    """
    lines = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is None:
            lines.append(f"waiting for {awaitable!r}"[:300])
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return lines
