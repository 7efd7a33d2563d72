"""What a fault test says about runs that did not finish: each one's row, lease, last events, the
wake-ups the bus holds for it and what each brain logged about it, read straight from PostgreSQL, Redis
and the process logs; then what every brain's tasks were waiting on."""

from __future__ import annotations

import json
import signal
from typing import Any

import psycopg
import redis

from harness.processes import LoopdProcess, ProcessGroup
from harness.waiting import eventually_sync
from services.core.bus.redis import WAKEUP_GROUP, WAKEUP_STREAM

LAST_EVENTS = 8
LOG_LINES = 6
TASK_DUMP = "services.brain.diagnostics: tasks:"  # how a brain opens its dump


def report(database_url: str, bus_url: str, processes: ProcessGroup, run_ids: list[str]) -> str:
    """Every run of `run_ids` that has not completed, described, then the task stacks and log tails."""
    brains = processes.named("brain-")
    unfinished = [run_id for run_id in run_ids if _status(database_url, run_id) != "completed"]
    described = [describe_run(database_url, bus_url, brains, run_id) for run_id in unfinished]
    dumps = [f"--- {brain.name} tasks:\n{_task_dump(brain)}" for brain in brains if brain.alive]
    summary = f"{len(unfinished)} of {len(run_ids)} runs did not complete"
    return "\n".join([summary, *described, *dumps, processes.logs()])


def describe_run(database_url: str, bus_url: str, brains: list[LoopdProcess], run_id: str) -> str:
    """A few lines on where `run_id` stands and who could move it on."""
    lines = [f"run {run_id}:", *_database_state(database_url, run_id), *_wakeups(bus_url, run_id)]
    for brain in brains:
        mentions = [line for line in _log_lines(brain) if run_id in line][-LOG_LINES:]
        brain_id = brain.env.get("LOOPD_BRAIN_ID")
        lines.append(f"  {brain.name} ({brain_id}) logged {len(mentions)} lines on it:")
        lines += [f"    {line[:300]}" for line in mentions]
    return "\n".join(lines)


def _task_dump(brain: LoopdProcess) -> str:
    """Have a brain log the stack of every task it runs (SIGUSR1), and return what it logged."""

    def dumped() -> str | None:
        text = "\n".join(_log_lines(brain))
        return text[text.rindex(TASK_DUMP) :] if text.count(TASK_DUMP) > before else None

    before = "\n".join(_log_lines(brain)).count(TASK_DUMP)
    brain.signal(signal.SIGUSR1)
    try:
        return eventually_sync(dumped, timeout=10)
    except AssertionError:
        return "(no dump within 10 s: its event loop is blocked)"


def _status(database_url: str, run_id: str) -> str | None:
    try:
        with psycopg.connect(_dsn(database_url), connect_timeout=5) as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else str(row[0])


def _dsn(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


RUN_ROW = (
    "SELECT status, step, last_seq, extract(epoch FROM now() - updated_at)::float FROM runs WHERE id = %s"
)
LEASE_ROW = (
    "SELECT owner, token, extract(epoch FROM expires_at - now())::float FROM run_leases WHERE run_id = %s"
)
LAST_EVENTS_QUERY = "SELECT seq, type, at, data FROM events WHERE run_id = %s ORDER BY seq DESC LIMIT %s"


def _database_state(database_url: str, run_id: str) -> list[str]:
    try:
        with psycopg.connect(_dsn(database_url), connect_timeout=5) as conn:
            row = conn.execute(RUN_ROW, (run_id,)).fetchone()
            lease = conn.execute(LEASE_ROW, (run_id,)).fetchone()
            events = conn.execute(LAST_EVENTS_QUERY, (run_id, LAST_EVENTS)).fetchall()
    except psycopg.Error as error:
        return [f"  the database could not be read: {error}"]
    lines = ["  row: none" if row is None else f"  row: status={row[0]} step={row[1]} last_seq={row[2]}"]
    if row is not None:
        lines[0] += f" untouched for {row[3]:.1f}s"
    if lease is None:
        lines.append("  lease: never taken")
    else:
        lines.append(f"  lease: owner={lease[0]} token={lease[1]} expires in {lease[2]:.1f}s")
    lines.append("  last events:")
    for seq, kind, at, data in reversed(events):
        lines.append(f"    {seq} {at:%H:%M:%S.%f} {kind} {_short(data)}")
    return lines


def _wakeups(bus_url: str, run_id: str) -> list[str]:
    client = redis.Redis.from_url(bus_url, decode_responses=True, socket_timeout=5)
    try:
        entries: list[Any] = client.xrange(WAKEUP_STREAM) or []
        pending: list[Any] = client.xpending_range(
            WAKEUP_STREAM, WAKEUP_GROUP, min="-", max="+", count=10_000
        )
    except redis.RedisError as error:
        return [f"  the bus could not be read: {error}"]
    finally:
        client.close()
    queued = [str(entry_id) for entry_id, fields in entries if (fields or {}).get("run_id") == run_id]
    mine = [p for p in pending if p["message_id"] in set(queued)]
    lines = [
        f"  wake-ups: {len(queued)} of the {len(entries)} in the stream ({', '.join(queued[-5:])}),"
        f" {len(mine)} of the {len(pending)} taken and not acked"
    ]
    for p in mine[-5:]:
        lines.append(
            f"    taken {p['message_id']}: by {p['consumer']} {p['time_since_delivered']} ms ago,"
            f" {p['times_delivered']} deliveries"
        )
    return lines


def _log_lines(process: LoopdProcess) -> list[str]:
    try:
        return process.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _short(data: Any, limit: int = 160) -> str:
    text = json.dumps(data, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
