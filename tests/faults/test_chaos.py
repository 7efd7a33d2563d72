"""Chaos: 50 concurrent runs while a random brain or hands process is SIGKILLed and restarted every
~2 s for 60 s. Every run completes with exactly the expected workspace and a gapless log, and no
model call repeats a committed step."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import pytest

from tests.faults.conftest import FaultCluster, assert_gapless

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

RUNS = 50
CHAOS_SECONDS = 60.0
KILL_EVERY_SECONDS = 2.0

SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "input": {"path": "notes.txt", "content": "alpha\n"}}]},
    {
        "tool_calls": [
            {
                "name": "bash",
                "input": {"command": "echo beta >> notes.txt; mkdir -p sub; echo gamma > sub/g.txt"},
            }
        ]
    },
    {
        "tool_calls": [
            {
                "name": "edit_file",
                "input": {"path": "notes.txt", "old_string": "alpha", "new_string": "ALPHA"},
            }
        ]
    },
    {"tool_calls": [{"name": "bash", "input": {"command": "sleep 0.5; echo delta >> notes.txt"}}]},
    {"text": "finished"},
]
EXPECTED = {"notes.txt": b"ALPHA\nbeta\ndelta\n", "sub/g.txt": b"gamma\n"}


def test_fifty_runs_survive_a_minute_of_random_kills(faults: FaultCluster) -> None:
    faults.use_script(SCRIPT)
    run_ids = [faults.start_run(name=f"chaos-{n}") for n in range(RUNS)]
    chooser = random.Random(20261126)
    victims = faults.cluster.brains() + faults.cluster.hands()
    kills = 0
    deadline = time.monotonic() + CHAOS_SECONDS
    while time.monotonic() < deadline:
        victim = chooser.choice([p.name for p in victims])
        faults.cluster.processes.processes[victim].kill()
        faults.cluster.processes.restart(victim)
        kills += 1
        time.sleep(KILL_EVERY_SECONDS)  # the chaos cadence itself, not a wait for a condition

    def finished() -> bool:
        statuses = [faults.run(run_id)["status"] for run_id in run_ids]
        return all(s in ("completed", "failed", "cancelled") for s in statuses)

    faults.until(finished, run_ids, timeout=300, interval=1.0)

    assert kills >= CHAOS_SECONDS / KILL_EVERY_SECONDS / 2
    expected = {path: hashlib.sha256(body).hexdigest() for path, body in EXPECTED.items()}
    with faults.cluster.client() as api:
        for run_id in run_ids:
            run = faults.run(run_id)
            assert run["status"] == "completed", (run["error"], [e["type"] for e in faults.events(run_id)])
            artifacts = {
                a["path"]: a["sha256"] for a in api.get(f"/v1/runs/{run_id}/artifacts").json()["data"]
            }
            assert artifacts == expected, (run_id, artifacts)
            assert_gapless(faults.events(run_id))
            faults.assert_no_committed_model_call_repeated(run_id)
