"""PostgreSQL and Redis restart under a batch of runs; every process reconnects and every run completes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.conftest import FaultCluster, assert_gapless

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

STEADY: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "input": {"command": "sleep 1; echo one >> out.txt"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "sleep 1; echo two >> out.txt"}}]},
    {"tool_calls": [{"name": "read_file", "input": {"path": "out.txt"}}]},
    {"text": "finished"},
]


def all_completed(faults: FaultCluster, run_ids: list[str]) -> bool:
    statuses = {faults.run(run_id)["status"] for run_id in run_ids}
    assert statuses <= {"queued", "running", "completed"}, statuses
    return statuses == {"completed"}


def test_runs_survive_a_postgres_restart_then_a_redis_restart(faults: FaultCluster) -> None:
    faults.use_script(STEADY)
    run_ids = [faults.start_run() for _ in range(6)]
    faults.until(lambda: len(faults.model.requests) >= 6, run_ids, timeout=60)

    faults.postgres.kill()
    faults.postgres.start()
    faults.until(lambda: len(faults.model.requests) >= 12, run_ids, timeout=90)
    faults.redis.stop()
    faults.redis.start()

    faults.until(lambda: all_completed(faults, run_ids), run_ids, timeout=180, interval=0.5)
    for run_id in run_ids:
        events = faults.events(run_id)
        assert_gapless(events)
        results = [e["data"] for e in events if e["type"] == "tool.result"]
        assert results[-1]["output"] == "one\ntwo\n"
        faults.assert_no_committed_model_call_repeated(run_id)
    assert all(p.alive for p in faults.cluster.processes.processes.values())


def test_a_rolling_restart_of_every_process_loses_nothing(faults: FaultCluster) -> None:
    faults.use_script(STEADY)
    run_ids = [faults.start_run() for _ in range(4)]
    faults.until(lambda: len(faults.model.requests) >= 4, run_ids, timeout=60)
    for process in list(faults.cluster.processes.processes.values()):
        # SIGTERM: a brain hands back or finishes its step, hands drains its calls.
        faults.cluster.processes.restart(process.name)
        faults.cluster.wait_ready(hands=2)

    faults.until(lambda: all_completed(faults, run_ids), run_ids, timeout=180, interval=0.5)
    for run_id in run_ids:
        assert_gapless(faults.events(run_id))
        assert [e["data"] for e in faults.events(run_id) if e["type"] == "tool.result"][-1][
            "output"
        ] == "one\ntwo\n"
        faults.assert_no_committed_model_call_repeated(run_id)
