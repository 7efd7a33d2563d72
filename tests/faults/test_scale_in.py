"""Scale-in under load, with real processes: a hands worker sent SIGTERM while runs are mid-call (some
running, some waiting for a slot) finishes the running calls, hands back the waiting ones, unregisters
and exits within `hands_stop_seconds`; every run completes on the other worker, with a gapless log, its
workspace intact, and no committed model call made again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.processes import LoopdProcess
from harness.scrape import samples
from tests.faults.conftest import FaultCluster, assert_gapless, fault_cluster

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

STOP_SECONDS = 60
RUNS = 8
# Each run's calls outlast the moment of the signal, so the worker has calls to finish and to give back.
SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "bash", "input": {"command": "echo started; sleep 3; echo one >> out.txt"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "sleep 1; echo two >> out.txt"}}]},
    {"tool_calls": [{"name": "read_file", "input": {"path": "out.txt"}}]},
    {"text": "finished"},
]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    # Two slots per worker: eight runs keep both workers busy with calls waiting behind them.
    with fault_cluster(
        tmp_path_factory.mktemp("scale-in"),
        LOOPD_HANDS_SLOTS="2",
        LOOPD_HANDS_STOP_SECONDS=str(STOP_SECONDS),
    ) as cluster:
        yield cluster


def loaded(faults: FaultCluster) -> LoopdProcess | None:
    """A hands worker with calls running and calls waiting for a slot."""
    for worker in faults.cluster.hands():
        page = faults.cluster.metrics(worker)
        hands_id = worker.env["LOOPD_HANDS_ID"]
        busy = samples(page, "loopd_hands_slots_busy", hands_id=hands_id)
        waiting = samples(page, "loopd_hands_calls_waiting", hands_id=hands_id)
        if busy and busy[0] > 0 and waiting and waiting[0] > 0:
            return worker
    return None


def all_completed(faults: FaultCluster, run_ids: list[str]) -> bool:
    statuses = {faults.run(run_id)["status"] for run_id in run_ids}
    assert statuses <= {"queued", "running", "completed"}, statuses
    return statuses == {"completed"}


def test_a_hands_worker_stopped_under_load_fails_no_run(faults: FaultCluster) -> None:
    faults.use_script(SCRIPT)
    run_ids = [faults.start_run() for _ in range(RUNS)]
    victim = faults.until(lambda: loaded(faults), run_ids, timeout=60, interval=0.1)
    victim_id = victim.env["LOOPD_HANDS_ID"]

    signalled = time.monotonic()
    victim.signal(signal.SIGTERM)
    try:
        exit_code = victim.process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hands did not exit within {STOP_SECONDS}s of SIGTERM:\n{victim.log_tail()}")
    took = time.monotonic() - signalled
    # Unregistered on the way out, not left to expire from the registry.
    assert victim_id not in [w.hands_id for w in faults.cluster.registry()]

    faults.until(lambda: all_completed(faults, run_ids), run_ids, timeout=180, interval=0.5)
    log = victim.log_path.read_text()
    assert exit_code == 0, victim.log_tail()
    assert took < STOP_SECONDS
    assert "handed back" in log and f"hands {victim_id} stopped" in log
    assert "at its stop deadline" not in log, "every running call finished before the deadline"
    for run_id in run_ids:
        events = faults.events(run_id)
        assert_gapless(events)
        results = [e["data"] for e in events if e["type"] == "tool.result"]
        assert [r["ok"] for r in results] == [True, True, True], results
        assert results[-1]["output"] == "one\ntwo\n"
        faults.assert_no_committed_model_call_repeated(run_id)
    # Where the calls went after the signal: every later sandbox is on the worker that stayed.
    moved = [
        e["data"]["hands_id"]
        for run_id in run_ids
        for e in faults.events(run_id)
        if e["type"] == "sandbox.provisioned" and e["data"]["hands_id"] != victim_id
    ]
    assert moved, "some run went on on the other worker"
    faults.cluster.processes.restart(victim.name)
    faults.cluster.wait_ready(hands=2)
