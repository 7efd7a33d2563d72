"""The lifecycle of a run, as stored in `runs.status` and `run.status` events and served by the API.

A StrEnum, so each member is the same plain string in PostgreSQL, in event payloads and on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A finished run takes no appends unless one reopens it (a new message).
TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
# A brain has work to do on these without anyone answering first.
RUNNABLE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
