"""Each process of a deployment serves its own metrics, and a run moves them: the gateway counts the
requests, the brains their commits, model and tool calls, the hands their calls, sandboxes and
snapshots."""

from __future__ import annotations

import secrets

import pytest

from harness.scrape import samples, total
from harness.waiting import eventually_sync
from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.docker

AGENT = {
    "name": "e2e-metrics",
    "model": "scripted",
    "script": [
        {"tool_calls": [{"name": "write_file", "input": {"path": "note.txt", "content": "measured\n"}}]},
        {"tool_calls": [{"name": "bash", "input": {"command": "cat note.txt"}}]},
        {"text": "done"},
    ],
}


def run_to_completion(deployment: Deployment) -> str:
    with deployment.client() as api:
        agent_id = f"metrics-{secrets.token_hex(3)}"
        assert api.post("/v1/agents", json={**AGENT, "id": agent_id}).status_code == 201
        created = api.post("/v1/runs", json={"agent_id": agent_id, "input": "go"})
        assert created.status_code == 201, created.text
        run_id = str(created.json()["id"])

        def completed() -> bool:
            status = api.get(f"/v1/runs/{run_id}").json()["status"]
            assert status not in ("failed", "cancelled"), status
            return bool(status == "completed")

        eventually_sync(completed, timeout=120, interval=0.2)
    return run_id


def test_a_run_moves_the_metrics_of_every_process(deployment: Deployment) -> None:
    run_to_completion(deployment)

    gateway = deployment.metrics()
    assert samples(gateway, "loopd_http_requests_total", method="POST", route="/v1/runs", status="201")
    run_route = "/v1/runs/{run_id}"
    assert samples(gateway, "loopd_http_requests_total", method="GET", route=run_route, status="200")

    brains = [deployment.metrics(brain) for brain in deployment.brains()]
    assert total(brains, "loopd_brain_step_commit_seconds_count") > 0
    assert total(brains, "loopd_brain_model_call_seconds_count", provider="scripted", outcome="ok") >= 3
    assert total(brains, "loopd_brain_tool_call_seconds_count", tool="write_file", outcome="ok") == 1
    assert total(brains, "loopd_brain_tool_call_seconds_count", tool="bash", outcome="ok") == 1
    for page, brain in zip(brains, deployment.brains(), strict=True):
        brain_id = brain.env["LOOPD_BRAIN_ID"]
        assert samples(page, "loopd_brain_admission_limit", brain_id=brain_id)[0] >= 1
        assert len(samples(page, "loopd_brain_runs_held", brain_id=brain_id)) == 1

    hands = [deployment.metrics(worker) for worker in deployment.hands()]
    assert total(hands, "loopd_hands_tool_call_seconds_count", tool="write_file", outcome="ok") == 1
    assert total(hands, "loopd_hands_tool_call_seconds_count", tool="bash", outcome="ok") == 1
    assert total(hands, "loopd_hands_sandbox_acquire_seconds_count") >= 1
    assert total(hands, "loopd_hands_snapshot_bytes_total") > len("measured\n")
    for page, worker in zip(hands, deployment.hands(), strict=True):
        hands_id = worker.env["LOOPD_HANDS_ID"]
        assert samples(page, "loopd_hands_slots_total", hands_id=hands_id) == [8]
        assert samples(page, "loopd_hands_slots_busy", hands_id=hands_id) == [0]
        assert len(samples(page, "loopd_hands_warm_sandboxes", hands_id=hands_id)) == 1
