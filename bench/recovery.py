"""What a brain SIGKILL costs a run: time from the kill to the next committed step, and how many
model calls and tool executions were repeated. Baseline: the step interval of the same run shape,
measured in the same run of this command without a kill.

    .venv/bin/python -m bench.recovery [--trials 5] [--lease-seconds 5]

Starts its own PostgreSQL, Redis, a local model server, one gateway, two brains and two hands.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from harness.cluster import Cluster, running_cluster
from harness.model_server import FakeModelServer
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres

# Every tool execution appends a line to exec.log, so repeated executions are counted from the
# workspace itself; the model thinks for a while on turn 2, which is when the brain is killed. A
# call that was in flight at the kill is made again (its reply was never committed); a call whose
# reply was committed must never be.
SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "input": {"command": "echo 1 >> exec.log"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "echo 2 >> exec.log"}}]},
    {
        "text": "thinking",
        "delay": 1.0,
        "tool_calls": [{"name": "bash", "input": {"command": "echo 3 >> exec.log"}}],
    },
    {"tool_calls": [{"name": "read_file", "input": {"path": "exec.log"}}]},
    {"text": "done"},
]
AGENT = {"name": "bench", "model": "openai/fake", "tools": ["bash", "read_file"]}


def committed_steps(api: httpx.Client, run_id: str) -> list[float]:
    events = api.get(f"/v1/runs/{run_id}/events").json()["data"]
    return [datetime.fromisoformat(e["at"]).timestamp() for e in events if e["type"] == "model.response"]


def wait_done(api: httpx.Client, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"/v1/runs/{run_id}").json()
        return run if run["status"] in ("completed", "failed") else None

    return eventually_sync(done, timeout=180, interval=0.05)


def one_trial(cluster: Cluster, model: FakeModelServer, kill: bool) -> dict[str, float]:
    with cluster.client() as api:
        user_input = f"bench {secrets.token_hex(6)}"
        run_id = api.post("/v1/runs", json={"agent": AGENT, "input": user_input}).json()["id"]

        def turn_two_asked() -> bool:
            return any(_turn(r.body) == 2 and _input(r.body) == user_input for r in model.requests)

        eventually_sync(turn_two_asked, timeout=60, interval=0.01)
        killed_at = time.time()
        if kill:
            brain = cluster.lease_owner(run_id)
            assert brain is not None, "the run's lease has no live holder"
            brain.kill()
            cluster.processes.restart(brain.name)
        run = wait_done(api, run_id)
        steps = committed_steps(api, run_id)
        events = api.get(f"/v1/runs/{run_id}/events").json()["data"]
    executions = [e["data"]["output"] for e in events if e["type"] == "tool.result"][-1].splitlines()
    asked = [(_turn(r.body), r.received_at) for r in model.requests if _input(r.body) == user_input]
    turns = [turn for turn, _ in asked]
    after_commit = sum(1 for turn, at in asked if turn < len(steps) and at > steps[turn])
    return {
        "completed": float(run["status"] == "completed"),
        "recovery_s": min(t for t in steps if t > killed_at) - killed_at,
        "step_interval_s": statistics.median(b - a for a, b in itertools.pairwise(steps)),
        "model_calls_made_again": float(len(turns) - len(set(turns))),
        "model_calls_repeated_after_commit": float(after_commit),
        "repeated_tool_executions": float(len(executions) - 3),
    }


def _input(body: Any) -> str | None:
    return next((m.get("content") for m in (body or {}).get("messages", []) if m.get("role") == "user"), None)


def _turn(body: Any) -> int:
    return sum(1 for m in (body or {}).get("messages", []) if m.get("role") == "assistant")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="loopd-bench-"))
    root.chmod(0o755)
    postgres, redis, model = (
        EmbeddedPostgres(root / "pg"),
        RedisServer(),
        FakeModelServer(SCRIPT, by_turn=True),
    )
    postgres.start()
    redis.start()
    model.start()
    try:
        with running_cluster(
            root,
            database_url=postgres.url,
            bus_url=redis.url,
            LOOPD_OPENAI_BASE_URL=model.openai_base_url,
            LOOPD_LEASE_SECONDS=str(args.lease_seconds),
            LOOPD_SWEEP_INTERVAL_SECONDS="1",
        ) as cluster:
            baseline = [one_trial(cluster, model, kill=False) for _ in range(args.trials)]
            killed = [one_trial(cluster, model, kill=True) for _ in range(args.trials)]
    finally:
        model.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(baseline, killed, args.lease_seconds)


def report(baseline: list[dict[str, float]], killed: list[dict[str, float]], lease: float) -> None:
    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def p95(rows: list[dict[str, float]], key: str) -> float:
        values = sorted(r[key] for r in rows)
        return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]

    def row(label: str, median: float, high: float, ratio: str = "") -> None:
        print(f"| {label:<50} | {median:>9.3f} | {high:>9.3f} | {ratio:>7} |")

    base = med(baseline, "step_interval_s")
    print(f"brain SIGKILL during a model call; lease {lease:.1f} s; {len(killed)} trials each\n")
    print(f"| {'figure':<50} | {'median':>9} | {'p95':>9} | {'ratio':>7} |")
    print(f"|{'-' * 52}|{'-' * 11}|{'-' * 11}|{'-' * 9}|")
    row("step interval, no kill (baseline) [s]", base, p95(baseline, "step_interval_s"), "1.00")
    recovery = med(killed, "recovery_s")
    row("kill -> next committed step [s]", recovery, p95(killed, "recovery_s"), f"{recovery / base:.2f}")
    for key in ("model_calls_made_again", "model_calls_repeated_after_commit", "repeated_tool_executions"):
        row(key.replace("_", " ") + " per killed run", med(killed, key), p95(killed, key))
    print(f"\nruns completed: {sum(r['completed'] for r in killed):.0f}/{len(killed)}")


if __name__ == "__main__":
    main()
