"""On SIGUSR1 a brain logs the stack of every task it runs, to show what a stuck run waits on."""

from __future__ import annotations

import asyncio
import io
import logging
import signal

logger = logging.getLogger(__name__)


def install_task_dump(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)


def _dump_tasks() -> None:
    report = io.StringIO()
    for task in asyncio.all_tasks():
        report.write(f"--- {task.get_name()}: {task.get_coro()!r}\n")
        task.print_stack(limit=30, file=report)
    logger.warning("tasks:\n%s", report.getvalue())
