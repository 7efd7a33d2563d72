"""Real processes, real SIGKILLs: whichever process dies, the run finishes, no committed model call is
made again, and a tool call's effect on the workspace lands exactly once."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from harness.waiting import eventually_sync
from tests.faults.conftest import FaultCluster, assert_gapless

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

APPEND_AND_READ: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "input": {"command": "echo started; sleep 4; echo line >> log.txt"}}]},
    {"tool_calls": [{"name": "read_file", "input": {"path": "log.txt"}}]},
    {"text": "finished"},
]


def wait_finished(faults: FaultCluster, run_id: str, timeout: float = 120) -> dict[str, object]:
    def finished() -> dict[str, object] | None:
        run = faults.run(run_id)
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    return faults.until(finished, [run_id], timeout=timeout, interval=0.2)


def kill_and_restart_lease_owner(faults: FaultCluster, run_id: str) -> None:
    owner = faults.lease_owner(run_id)
    assert owner is not None
    owner.kill()
    faults.cluster.processes.restart(owner.name)


def read_back(faults: FaultCluster, run_id: str) -> str:
    results = [e["data"] for e in faults.events(run_id) if e["type"] == "tool.result"]
    return str(results[-1]["output"])


def test_a_brain_killed_during_a_model_call_costs_no_committed_call(faults: FaultCluster) -> None:
    faults.use_script(
        [
            {"tool_calls": [{"name": "write_file", "input": {"path": "a.txt", "content": "one\n"}}]},
            {
                "text": "thinking hard",
                "delay": 3,
                "tool_calls": [{"name": "bash", "input": {"command": "echo two >> a.txt"}}],
            },
            {"tool_calls": [{"name": "read_file", "input": {"path": "a.txt"}}]},
            {"text": "finished"},
        ]
    )
    run_id = faults.start_run()
    eventually_sync(lambda: any(turn == 1 for turn, _ in faults.model_requests_for(run_id)), timeout=60)
    kill_and_restart_lease_owner(faults, run_id)

    run = wait_finished(faults, run_id)
    assert run["status"] == "completed", run
    assert read_back(faults, run_id) == "one\ntwo\n"
    assert_gapless(faults.events(run_id))
    faults.assert_no_committed_model_call_repeated(run_id)


def test_a_brain_killed_after_the_model_commit_runs_the_tool_once(faults: FaultCluster) -> None:
    faults.use_script(APPEND_AND_READ)
    run_id = faults.start_run()
    faults.wait_for_event(run_id, lambda e: e["type"] == "tool.call")
    kill_and_restart_lease_owner(faults, run_id)

    run = wait_finished(faults, run_id)
    assert run["status"] == "completed", run
    assert read_back(faults, run_id) == "line\n"
    events = faults.events(run_id)
    assert_gapless(events)
    assert sum(1 for e in events if e["type"] == "tool.result") == 2
    faults.assert_no_committed_model_call_repeated(run_id)


def test_a_hands_worker_killed_mid_call_is_retried_from_the_snapshot(faults: FaultCluster) -> None:
    kill_the_hands_mid_call(faults)


def kill_the_hands_mid_call(faults: FaultCluster) -> None:
    """Kill the hands worker that runs a call; the retry restores the snapshot on the other worker."""
    faults.use_script(
        [
            {"tool_calls": [{"name": "write_file", "input": {"path": "log.txt", "content": "first\n"}}]},
            *APPEND_AND_READ,
        ]
    )
    run_id = faults.start_run()
    faults.wait_for_event(run_id, lambda e: e["type"] == "tool.output" and "started" in e["data"]["data"])
    # The registry shows the run's sandbox from its holder's next heartbeat on.
    holder = eventually_sync(lambda: faults.hands_holding(run_id), timeout=30)
    holder.kill()

    run = wait_finished(faults, run_id)
    faults.cluster.processes.restart(holder.name)
    assert run["status"] == "completed", run
    assert read_back(faults, run_id) == "first\nline\n"
    events = faults.events(run_id)
    assert_gapless(events)
    assert "sandbox.lost" in [e["type"] for e in events]
    faults.cluster.wait_ready(hands=2)


def test_a_paused_brain_past_its_lease_cannot_commit(faults: FaultCluster) -> None:
    faults.use_script(APPEND_AND_READ)
    run_id = faults.start_run()
    faults.wait_for_event(run_id, lambda e: e["type"] == "tool.call")
    stale = faults.lease_owner(run_id)
    assert stale is not None
    stale.signal(signal.SIGSTOP)
    try:
        run = wait_finished(faults, run_id)
    finally:
        stale.signal(signal.SIGCONT)
    assert run["status"] == "completed", run

    eventually_sync(lambda: "lost the lease" in stale.log_path.read_text(), timeout=30)
    events = faults.events(run_id)
    assert_gapless(events)
    call_ids = [e["data"]["call_id"] for e in events if e["type"] == "tool.result"]
    assert len(call_ids) == len(set(call_ids)) == 2
    assert read_back(faults, run_id) == "line\n"
