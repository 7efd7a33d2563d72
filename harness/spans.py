"""When runs ran, read from their event logs, and the most that ran at once: how tests judge a quota
without watching the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

ENDS = ("run.waiting", "run.completed", "run.failed", "run.cancelled")


def running_spans(events: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    """When the run was running (its events as the API shows them): from each run.status `running` to
    the wait or the end that follows it.

    A brain takes the run's lease before it commits `running` and lets go after it commits the wait or
    the end, so each span lies within a time the run's lease was held.
    """
    spans, started = [], None
    for event in events:
        at = datetime.fromisoformat(event["at"])
        if event["type"] == "run.status" and event["data"]["status"] == "running":
            started = at
        elif event["type"] in ENDS and started is not None:
            spans.append((started, at))
            started = None
    return spans


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    # At the same instant an end comes before a start: the slot was freed before it was taken again.
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak
