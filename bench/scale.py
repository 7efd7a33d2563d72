"""Many concurrent runs on two brain processes: steps per second, step overhead, brain memory.

    .venv/bin/python -m bench.scale [--runs 1000] [--turns 3] [--model-delay 1.0]

Starts its own PostgreSQL and Redis, a model server that speaks the OpenAI wire format and answers
every call after `--model-delay` seconds (harness/model_server.py, as a process), one gateway and
two brains (`python -m services.brain`). All runs are created over REST first, then the brains start
and take the backlog at once, so every run is in flight together. A run has no tools, so each model
turn ends the run; the client then sends the next message over REST, `--turns` times in all.

Step overhead, per model turn (timestamps from PostgreSQL's transaction clock and the model server's
wall clock, on one machine):
- reply -> commit: from the model server having its reply ready (after the delay) to the start of
  the fenced transaction that commits `model.response` (the event's `at`): the brain's share.
- reply due -> commit: the same from the request's arrival + the delay, so it also holds how late
  the model server itself was (it shares the machine's cores with everything else).
- commit -> model request: from the commit of the user message that opens turns 2.. to the model
  server receiving that turn's request (wake-up, lease, state rebuild, lease check, HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench._support import (
    Servers,
    cpu_seconds,
    machine,
    median,
    percentile,
    plain_url,
    rss_bytes,
    servers,
    stored_bytes,
    table,
)
from bench.counters import RedisCounters, WalRecords, redis_counters, wal_bytes, wal_lsn, wal_records
from harness.processes import HIGH_RATE_LIMITS, LoopdProcess, ProcessGroup
from services.core.bus.redis import WAKEUP_STREAM
from services.core.keys import mint
from services.local.postgres import free_port

AGENT = {"name": "bench", "model": "openai/fake", "tools": []}
DATABASE_POOL_SIZE = 40  # per process; PostgreSQL here allows 300 connections


@dataclass
class Observed:
    """What the client saw while the runs went: brain memory, runs in flight, wall times."""

    started: float = 0.0
    finished: float = 0.0
    peak_rss: dict[str, int] = field(default_factory=dict)
    end_rss: dict[str, int] = field(default_factory=dict)
    # CPU seconds each process spent while the runs went (process name -> seconds).
    cpu: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    drain_seconds: float = 0.0  # from the last turn to the brains having taken every wake-up
    events_streamed: int = 0  # SSE events with an id the client received (with --follow)


@dataclass
class Written:
    """What PostgreSQL and Redis did in a phase (creating the runs, or the brains running every turn)."""

    wal_bytes: int
    wal: WalRecords
    redis: RedisCounters


def start_model_server(root: Path, turns: int, delay: float) -> tuple[subprocess.Popen[bytes], str]:
    script = root / "model-script.json"
    replies = [{"text": f"turn {n + 1}", "delay": delay} for n in range(turns)]
    script.write_text(json.dumps({"responses": replies, "by_turn": True}))
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.model_server", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    first = process.stdout.readline().decode().strip()  # "listening http://127.0.0.1:PORT"
    if not first.startswith("listening "):
        process.kill()
        raise RuntimeError(f"the model server did not start: {first!r}")
    return process, first.split(" ", 1)[1]


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        time.sleep(0.1)


def gateway_ready(url: str, key: str) -> bool:
    try:
        response = httpx.get(f"{url}/v1/runs", params={"limit": 1}, timeout=2, headers=auth(key))
        return response.status_code == 200
    except httpx.TransportError:
        return False


def brain_started(brain: LoopdProcess) -> bool:
    if not brain.alive:
        raise RuntimeError(f"brain exited:\n{brain.log_tail()}")
    return " started" in brain.log_path.read_text(errors="replace")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_runs(url: str, key: str, count: int, parallel: int) -> dict[str, str]:
    """run id -> its first input, created over REST with at most `parallel` requests in flight."""
    gate = asyncio.Semaphore(parallel)
    created: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=auth(key)) as api:

        async def one(index: int) -> None:
            user_input = f"run {index} {secrets.token_hex(4)}"
            async with gate:
                response = await api.post("/v1/runs", json={"agent": AGENT, "input": user_input})
            response.raise_for_status()
            created[response.json()["id"]] = user_input

        await asyncio.gather(*(one(i) for i in range(count)))
    return created


async def drive_turns(
    url: str,
    key: str,
    database_url: str,
    run_ids: set[str],
    turns: int,
    brains: list[LoopdProcess],
    timeout: float,
    follow: bool = False,
) -> Observed:
    """Send the next message to every run whose turn completed, until all runs finished `turns` turns;
    with `follow`, a live event stream per run is open all along."""
    observed = Observed(started=time.time())
    sent: dict[str, int] = dict.fromkeys(run_ids, 1)
    async with (
        httpx.AsyncClient(base_url=url, timeout=120, headers=auth(key)) as api,
        await psycopg.AsyncConnection.connect(plain_url(database_url), autocommit=True) as conn,
    ):
        # The streams have their own client: on the one that sends the messages they would hold every
        # connection of its pool.
        unbounded = httpx.Limits(max_connections=None)
        streams = httpx.AsyncClient(base_url=url, headers=auth(key), limits=unbounded)
        followers = [asyncio.create_task(stream_events(streams, r, observed)) for r in run_ids if follow]
        gate = asyncio.Semaphore(64)

        async def send(run_id: str, turn: int) -> None:
            async with gate:
                response = await api.post(f"/v1/runs/{run_id}/messages", json={"content": f"turn {turn}"})
            response.raise_for_status()

        deadline = time.monotonic() + timeout
        while True:
            sample_rss(brains, observed)
            # A run whose reply is committed but which stays `queued` (see Turns.unfinished) is done with
            # its turn too; after a quiet moment it gets its next message like a completed one.
            rows = await (
                await conn.execute(
                    "SELECT id, status, step, updated_at < now() - interval '3 seconds' FROM runs "
                    "WHERE status IN ('completed', 'failed', 'queued')"
                )
            ).fetchall()
            finished = 0
            to_send = []
            for run_id, status, step, quiet in rows:
                if run_id not in sent or step < sent[run_id]:
                    continue
                turn_done = status == "completed" or (status == "queued" and quiet)
                if status == "failed" or (step >= turns and turn_done):
                    finished += 1
                elif turn_done:
                    sent[run_id] += 1
                    to_send.append(send(run_id, sent[run_id]))
            await asyncio.gather(*to_send)
            if finished == len(run_ids):
                break
            if time.monotonic() > deadline:
                observed.timed_out = True
                break
            await asyncio.sleep(0.1)
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await streams.aclose()
    observed.finished = time.time()
    observed.end_rss = {b.name: rss_bytes(b.process.pid) for b in brains}
    return observed


async def stream_events(api: httpx.AsyncClient, run_id: str, observed: Observed) -> None:
    """Follow one run's live SSE stream from its first event, counting the logged events it delivers."""
    async with api.stream("GET", f"/v1/runs/{run_id}/events/stream", timeout=None) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                observed.events_streamed += 1


def sample_rss(brains: list[LoopdProcess], observed: Observed) -> None:
    for brain in brains:
        observed.peak_rss[brain.name] = max(
            observed.peak_rss.get(brain.name, 0), rss_bytes(brain.process.pid)
        )


@dataclass
class Turns:
    """Per (run, turn): when its opening message committed, its model call arrived, its reply committed."""

    opened: dict[tuple[str, int], float] = field(default_factory=dict)
    requested: dict[tuple[str, int], float] = field(default_factory=dict)
    answered: dict[tuple[str, int], float] = field(default_factory=dict)  # the model's reply was ready
    replied: dict[tuple[str, int], float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Replies committed without the run completing after them: a new message committed between the
    # brain's completion and its next refresh keeps the run `queued` with its answer in the log.
    unfinished: int = 0


def collect(database_url: str, model_url: str, inputs: dict[str, str]) -> Turns:
    turns = Turns()
    with psycopg.connect(plain_url(database_url)) as conn:
        for status, count in conn.execute("SELECT status, count(*) FROM runs GROUP BY status"):
            turns.statuses[status] = count
        counters: dict[tuple[str, str], int] = defaultdict(int)
        rows = conn.execute(
            "SELECT run_id, type, at FROM events "
            "WHERE type IN ('user.message', 'model.response', 'run.completed') ORDER BY run_id, seq"
        )
        awaiting: str | None = None
        for run_id, kind, at in rows:
            if kind == "run.completed":
                awaiting = None
                continue
            if awaiting is not None:
                turns.unfinished += 1
            awaiting = run_id if kind == "model.response" else None
            counters[(run_id, kind)] += 1
            key = (run_id, counters[(run_id, kind)])
            (turns.opened if kind == "user.message" else turns.replied)[key] = _seconds(at)
    by_input = {text: run_id for run_id, text in inputs.items()}
    for request in httpx.get(f"{model_url}/_requests", timeout=120).json():
        messages = (request.get("body") or {}).get("messages") or []
        first = next((m.get("content") for m in messages if m.get("role") == "user"), None)
        run_id = by_input.get(first) if isinstance(first, str) else None
        if run_id is None:
            continue
        turn = 1 + sum(1 for m in messages if m.get("role") == "assistant")
        if (run_id, turn) not in turns.requested:
            turns.requested[(run_id, turn)] = request["received_at"]
            if request.get("replied_at") is not None:
                turns.answered[(run_id, turn)] = request["replied_at"]
    return turns


def _seconds(at: datetime) -> float:
    return at.timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3, help="model turns per run")
    parser.add_argument("--model-delay", type=float, default=1.0, help="seconds before each model reply")
    parser.add_argument("--brain-concurrency", type=int, help="LOOPD_BRAIN_CONCURRENCY (default: --runs)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--follow", action="store_true", help="keep a live event stream open per run")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle baseline afterwards")
    args = parser.parse_args()
    concurrency = args.brain_concurrency or args.runs
    with servers() as running:
        model, model_url = start_model_server(running.root, args.turns, args.model_delay)
        group = ProcessGroup(running.root, base_env=environment(running, model_url, concurrency))
        try:
            results = measure(group, running, model, model_url, args)
        except Exception:
            print(f"failed; the processes' logs:\n{group.logs()}", file=sys.stderr)
            raise
        finally:
            group.stop_all()
            model.terminate()
            model.wait(timeout=10)
    report(*results, args, concurrency)


def environment(running: Servers, model_url: str, concurrency: int) -> dict[str, str]:
    assert running.redis is not None
    return {
        "LOOPD_DATABASE_URL": running.database_url,
        "LOOPD_BUS_URL": running.redis.url,
        "LOOPD_ARTIFACTS_DIR": str(running.root / "artifacts"),
        "LOOPD_TENANT": "bench",
        "LOOPD_ADMIN_KEY": mint(),
        "LOOPD_PORT": str(free_port()),
        "LOOPD_OPENAI_BASE_URL": f"{model_url}/v1",
        "LOOPD_BRAIN_CONCURRENCY": str(concurrency),
        # Hundreds of runs per brain need more than the default 10 (+10 in bursts) connections: with
        # too few, commits wait for a connection, and burst connections are opened and closed again.
        "LOOPD_DATABASE_POOL_SIZE": str(DATABASE_POOL_SIZE),
        # Every run and every turn is sent with the one admin key, hundreds a second: the limiter is
        # measured on each request, but must not refuse them.
        **HIGH_RATE_LIMITS,
    }


class Phase:
    """The WAL position and Redis's counters at its start; `end()` gives what was written since."""

    def __init__(self, running: Servers) -> None:
        assert running.redis is not None
        self.running, self.redis_url = running, running.redis.url
        self.lsn, self.redis = wal_lsn(running.database_url), redis_counters(self.redis_url)

    def end(self) -> Written:
        lsn = wal_lsn(self.running.database_url)
        return Written(
            wal_bytes(self.running.database_url, self.lsn, lsn),
            wal_records(self.running.postgres.data_dir, self.lsn, lsn),
            redis_counters(self.redis_url).since(self.redis),
        )


def measure(
    group: ProcessGroup,
    running: Servers,
    model: subprocess.Popen[bytes],
    model_url: str,
    args: argparse.Namespace,
) -> tuple[Observed, Turns, dict[str, str], list[Written], int]:
    url = f"http://127.0.0.1:{group.base_env['LOOPD_PORT']}"
    group.start("gateway", "services.gateway")
    key = group.base_env["LOOPD_ADMIN_KEY"]
    wait_until(lambda: gateway_ready(url, key), 60, "gateway")
    stored_before = stored_bytes(running.database_url)
    creating = Phase(running)
    inputs = asyncio.run(create_runs(url, key, args.runs, parallel=32))
    created = creating.end()
    running_turns = Phase(running)
    brains = [group.start(f"brain-{n}", "services.brain", LOOPD_BRAIN_ID=f"brain-{n}") for n in (1, 2)]
    for brain in brains:
        wait_until(lambda b=brain: brain_started(b), 60, brain.name)
    pids = {p.name: p.process.pid for p in group.processes.values()}
    assert running.postgres.pid is not None and running.redis is not None and running.redis.process
    pids.update(postgres=running.postgres.pid, redis=running.redis.process.pid, model=model.pid)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    observed = asyncio.run(
        drive_turns(
            url, key, running.database_url, set(inputs), args.turns, brains, args.timeout, args.follow
        )
    )
    # Wake-ups still queued when the last turn committed (the sweep wakes a run that waited for a brain
    # again, every sweep) are the turns' cost too: the phase, and the CPU, end once the brains took them.
    drained = time.monotonic()
    wait_until(lambda: wakeups_queued(running) == 0, 300, "the wake-up stream drained")
    observed.drain_seconds = time.monotonic() - drained
    observed.cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    observed.cpu["benchmark client"] = time.process_time() - client_before
    turned = running_turns.end()
    # The same processes with nothing to do: what their timers (the sweep, the wake-up stream's polls)
    # cost by the second, whatever the runs do.
    idling = Phase(running)
    time.sleep(args.idle)
    idle = idling.end()
    growth = stored_bytes(running.database_url) - stored_before
    if observed.timed_out:
        print(f"timed out; the processes' logs:\n{group.logs()}", file=sys.stderr)
    return observed, collect(running.database_url, model_url, inputs), inputs, [created, turned, idle], growth


def wakeups_queued(running: Servers) -> int:
    assert running.redis is not None
    client = redis.Redis.from_url(running.redis.url)
    try:
        return int(client.xlen(WAKEUP_STREAM))
    finally:
        client.close()


def in_flight_peak(requested: dict[tuple[str, int], float], delay: float) -> int:
    """The most model calls waiting on the model at one moment."""
    edges = sorted([(t, 1) for t in requested.values()] + [(t + delay, -1) for t in requested.values()])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def report(
    observed: Observed,
    turns: Turns,
    inputs: dict[str, str],
    written: list[Written],
    growth: int,
    args: argparse.Namespace,
    concurrency: int,
) -> None:
    ms, mib = 1000.0, 2**20
    reply_to_commit = [at - turns.answered[key] for key, at in turns.replied.items() if key in turns.answered]
    due_to_commit = [
        at - (turns.requested[key] + args.model_delay)
        for key, at in turns.replied.items()
        if key in turns.requested
    ]
    commit_to_request = [
        turns.requested[key] - at
        for key, at in turns.opened.items()
        if key[1] >= 2 and key in turns.requested
    ]
    replies = sorted(turns.replied.values())
    span = replies[-1] - replies[0] if len(replies) > 1 else float("nan")
    print(f"machine: {machine()}")
    print(
        f"{len(inputs)} runs x {args.turns} model turns, model delay {args.model_delay:.1f} s, 2 brains with "
        f"LOOPD_BRAIN_CONCURRENCY={concurrency}, 1 gateway; statuses {dict(turns.statuses)}"
        + ("; TIMED OUT" if observed.timed_out else "")
    )
    summary = [
        ["model turns committed", len(turns.replied), f"of {len(inputs) * args.turns}"],
        ["replies not followed by run.completed (stuck queued)", turns.unfinished, "see docs/performance.md"],
        ["model calls in flight at once (peak)", in_flight_peak(turns.requested, args.model_delay), ""],
        ["steps per second (model turns / first-to-last commit)", len(replies) / span, f"over {span:.1f} s"],
    ]
    print(table("throughput", ["figure", "value", "note"], summary))
    rows = [
        [
            name,
            len(values),
            median(values) * ms,
            percentile(values, 0.95) * ms,
            percentile(values, 0.99) * ms,
            max(values) * ms,
        ]
        for name, values in (
            ("reply -> commit", reply_to_commit),
            ("reply due -> commit", due_to_commit),
            ("commit -> model request", commit_to_request),
        )
        if values
    ]
    print(
        table(
            "step overhead per model turn",
            ["interval", "turns", "median [ms]", "p95 [ms]", "p99 [ms]", "max [ms]"],
            rows,
        )
    )
    memory = [
        [name, observed.peak_rss[name] / mib, observed.end_rss.get(name, 0) / mib]
        for name in sorted(observed.peak_rss)
    ]
    print(table("brain memory", ["process", "peak RSS [MiB]", "RSS at the end [MiB]"], memory))
    total = sum(observed.cpu.values())
    turns_done = max(1, len(turns.replied))
    cpu = [
        [name, seconds, seconds / turns_done * ms, seconds / total if total else 0.0]
        for name, seconds in sorted(observed.cpu.items(), key=lambda item: -item[1])
    ]
    cpu.append(["all", total, total / turns_done * ms, 1.0])
    print(
        table(
            f"CPU while the runs went ({observed.finished - observed.started:.1f} s of wall time, then "
            f"{observed.drain_seconds:.1f} s until the brains took every wake-up, on {os.cpu_count()} cores)",
            ["process", "CPU [s]", "CPU per model turn [ms]", "share"],
            cpu,
        )
    )

    if args.follow:
        streamed = max(1, observed.events_streamed)
        gateway = observed.cpu.get("gateway", 0.0)
        print(
            f"\nevents streamed live (one stream per run): {observed.events_streamed}; gateway CPU per "
            f"event streamed, all its work included: {gateway / streamed * ms:.3f} ms"
        )
    print(stores(written, growth, len(inputs), turns_done, args.idle))


def stores(written: list[Written], growth: int, runs: int, turns_done: int, idle_seconds: float) -> str:
    """WAL, commits and Redis commands per run created, per model turn and per idle second, and the
    tables' growth."""
    created, turned, idle = written
    scale = (max(1, runs), max(1, turns_done), max(idle_seconds, 1e-9))
    phases = (created, turned, idle)

    def row(name: str, value: Callable[[Written], float]) -> list[object]:
        return [name, *(value(p) / n for p, n in zip(phases, scale, strict=True))]

    rows = [
        row("WAL bytes", lambda p: p.wal_bytes),
        row("commit records (transactions that wrote)", lambda p: p.wal.commits),
    ]
    heaviest = sorted(turned.wal.size.items(), key=lambda item: -item[1])[:6]
    for name, _ in heaviest:
        rows.append(row(f"WAL record {name} (bytes)", partial(_wal_size, name)))
    for command in sorted(set(created.redis.calls) | set(turned.redis.calls) | set(idle.redis.calls)):
        rows.append(row(f"Redis {command.upper()} calls", partial(_redis_calls, command)))
    rows += [
        row("Redis bytes in", lambda p: p.redis.bytes_in),
        row("Redis bytes out", lambda p: p.redis.bytes_out),
    ]
    return (
        table(
            "what PostgreSQL wrote and Redis was asked: creating the runs over REST (per run), the brains "
            "starting and running every turn (per model turn), then the same processes idle (per second)",
            ["figure", "per run created", "per model turn", "per idle second"],
            rows,
        )
        + f"\n\ntables, indexes and TOAST after VACUUM (ANALYZE), grown by {growth} bytes: "
        f"{growth / scale[0]:.0f} per run, {growth / scale[1]:.0f} per model turn"
    )


def _wal_size(name: str, phase: Written) -> float:
    return phase.wal.size.get(name, 0)


def _redis_calls(command: str, phase: Written) -> float:
    return phase.redis.calls.get(command, 0)


if __name__ == "__main__":
    main()
