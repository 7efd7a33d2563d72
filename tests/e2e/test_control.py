"""People in the loop and time travel, end to end: approvals, denials, ask_user, interrupts, budgets,
fork and diff, sub-agents and client tools, on a deployment of separate processes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.cluster import running_cluster
from harness.listener import Listener
from harness.model_cluster import ModelCluster, assert_gapless
from harness.model_server import FakeModelServer
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def loop(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelCluster]:
    model = FakeModelServer(by_turn=True)
    model.start()
    try:
        with running_cluster(
            tmp_path_factory.mktemp("control"),
            database_url=postgres.url,
            bus_url=redis.url,
            LOOPD_OPENAI_BASE_URL=model.openai_base_url,
            LOOPD_OPENAI_API_KEY="test-key",
        ) as cluster:
            yield ModelCluster(cluster, postgres, redis, model)
    finally:
        model.stop()


def scripted(*turns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "control", "model": "scripted", "script": list(turns), **extra}


def start(loop: ModelCluster, agent: dict[str, Any], **body: Any) -> str:
    with loop.cluster.client() as api:
        created = api.post("/v1/runs", json={"agent": agent, "input": f"task {secrets.token_hex(4)}", **body})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def until_status(loop: ModelCluster, run_id: str, *statuses: str, timeout: float = 90) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run = loop.run(run_id)
        return run if run["status"] in statuses else None

    try:
        return eventually_sync(reached, timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(
            f"{run_id} is {loop.run(run_id)['status']}\n{loop.cluster.processes.logs()}"
        ) from None


def post(loop: ModelCluster, path: str, body: dict[str, Any] | None = None) -> Any:
    with loop.cluster.client() as api:
        return api.post(path, json=body or {})


def results(loop: ModelCluster, run_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in loop.events(run_id) if e["type"] == "tool.result"]


def holds_nothing(loop: ModelCluster, run_id: str) -> bool:
    dsn = loop.postgres.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        leased = conn.execute(
            "SELECT 1 FROM run_leases WHERE run_id = %s AND expires_at > now()", (run_id,)
        ).fetchone()
    sandboxes = [s for w in loop.cluster.registry() for s in w.sandboxes]
    return leased is None and run_id not in sandboxes


ASK_BASH = scripted(
    {"tool_calls": [{"name": "write_file", "input": {"path": "plan.txt", "content": "plan\n"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "echo approved >> plan.txt; cat plan.txt"}}]},
    {"text": "done"},
    permissions={"bash": "ask"},
)


def test_an_ask_tool_waits_holding_nothing_survives_a_full_restart_and_completes(loop: ModelCluster) -> None:
    run_id = start(loop, ASK_BASH)
    run = until_status(loop, run_id, "waiting")
    assert run["waiting_for"]["type"] == "approval"
    [call_id] = run["waiting_for"]["call_ids"]
    eventually_sync(lambda: holds_nothing(loop, run_id), timeout=30)
    seq_before = loop.events(run_id)[-1]["seq"]

    for process in list(loop.cluster.processes.processes.values()):
        loop.cluster.processes.restart(process.name)
    loop.cluster.wait_ready(hands=2)
    assert loop.run(run_id)["status"] == "waiting"
    assert loop.events(run_id)[-1]["seq"] == seq_before  # nothing happened while it waited

    assert post(loop, f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "allow"}).status_code == 202
    until_status(loop, run_id, "completed")
    assert results(loop, run_id)[-1]["output"] == "plan\napproved\n"
    assert_gapless(loop.events(run_id))


def test_a_denial_reaches_the_model_with_its_message(loop: ModelCluster) -> None:
    loop.use_script(
        [
            {"tool_calls": [{"name": "bash", "input": {"command": "rm -rf /workspace/*"}}]},
            {"text": "understood"},
        ]
    )
    run_id = start(loop, loop.agent(permissions={"bash": "ask"}))
    run = until_status(loop, run_id, "waiting")
    [call_id] = run["waiting_for"]["call_ids"]
    response = post(
        loop, f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "deny", "message": "not today"}
    )
    assert response.status_code == 202
    until_status(loop, run_id, "completed")
    denied = results(loop, run_id)[0]
    assert denied["ok"] is False and denied["error"] == "denied" and "not today" in denied["output"]
    last_request = loop.model.requests[-1]  # the log holds this run's requests only (use_script)
    tool_messages = [m for m in last_request.body["messages"] if m["role"] == "tool"]
    assert "not today" in tool_messages[0]["content"]
    assert "sandbox.provisioned" not in [e["type"] for e in loop.events(run_id)]


def test_ask_user_rejects_an_invalid_answer_and_accepts_a_valid_one(loop: ModelCluster) -> None:
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}}, "required": ["color"]}
    agent = scripted(
        {"tool_calls": [{"name": "ask_user", "input": {"question": "Which color?", "schema": schema}}]},
        {"text": "thanks"},
        tools=["ask_user"],
    )
    run_id = start(loop, agent)
    run = until_status(loop, run_id, "waiting")
    assert run["waiting_for"]["question"] == "Which color?"
    wrong = post(loop, f"/v1/runs/{run_id}/messages", {"content": {"color": "green"}})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "answer_invalid"
    assert "green" in wrong.json()["error"]["message"] or "enum" in wrong.json()["error"]["message"]
    assert loop.run(run_id)["status"] == "waiting"
    assert post(loop, f"/v1/runs/{run_id}/messages", {"content": {"color": "blue"}}).status_code == 202
    until_status(loop, run_id, "completed")
    assert json.loads(results(loop, run_id)[0]["output"]) == {"color": "blue"}


# Every level tries both branches and the first always fails, so checking costs 2**depth.
EXPONENTIAL_SCHEMA = {
    "$defs": {
        "node": {
            "anyOf": [
                {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/node"}},
                {"type": "array", "items": {"$ref": "#/$defs/node"}},
            ]
        }
    },
    "$ref": "#/$defs/node",
}


def test_ask_user_refuses_a_remote_schema_and_checks_answers_without_stalling_the_gateway(
    loop: ModelCluster,
) -> None:
    with Listener() as listener:
        agent = scripted(
            {
                "tool_calls": [
                    {"name": "ask_user", "input": {"question": "?", "schema": {"$ref": listener.url()}}}
                ]
            },
            {
                "tool_calls": [
                    {"name": "ask_user", "input": {"question": "Tree?", "schema": EXPONENTIAL_SCHEMA}}
                ]
            },
            {"text": "thanks"},
            tools=["ask_user"],
        )
        run_id = start(loop, agent)
        run = until_status(loop, run_id, "waiting", "completed", "failed")
        assert run["status"] == "waiting" and run["waiting_for"]["question"] == "Tree?"
    assert listener.connections == 0
    refused = results(loop, run_id)[0]
    assert refused["error"] == "invalid_input" and "only local references" in refused["output"]

    nested: list[Any] = []
    for _ in range(40):
        nested = [nested]
    with ThreadPoolExecutor(1) as pool, loop.cluster.client() as api:
        checking = pool.submit(post, loop, f"/v1/runs/{run_id}/messages", {"content": nested})
        served = 0
        while not checking.done():
            assert api.get("/healthz").status_code == 200
            served += 1
        unverifiable = checking.result()
    assert unverifiable.status_code == 422 and unverifiable.json()["error"]["code"] == "answer_unverifiable"
    assert served >= 3  # the gateway kept answering for the two seconds the check was given
    assert loop.run(run_id)["status"] == "waiting"

    assert post(loop, f"/v1/runs/{run_id}/messages", {"content": [[], [[]]]}).status_code == 202
    until_status(loop, run_id, "completed")
    assert json.loads(results(loop, run_id)[1]["output"]) == [[], [[]]]
    assert_gapless(loop.events(run_id))


def test_an_interrupt_stops_a_long_tool_call_and_delivers_its_message(loop: ModelCluster) -> None:
    agent = scripted(
        {
            "tool_calls": [
                {"name": "bash", "input": {"command": "while true; do echo started; sleep 0.2; done"}}
            ]
        },
        {"text": "stopped as asked"},
    )
    run_id = start(loop, agent)
    loop.wait_for_event(run_id, lambda e: e["type"] == "tool.output" and "started" in e["data"]["data"])
    assert post(loop, f"/v1/runs/{run_id}/interrupt", {"message": "stop and summarise"}).status_code == 202
    run = until_status(loop, run_id, "completed", timeout=30)  # the call never ends on its own
    assert run["result"] == "stopped as asked"
    assert results(loop, run_id)[0]["error"] == "interrupted"
    kinds = [(e["type"], e["data"].get("content")) for e in loop.events(run_id)]
    assert ("user.message", "stop and summarise") in kinds or ("user.interrupt", None) in [
        (k, None) for k, _ in kinds
    ]


def test_a_budget_stops_the_run_until_it_is_raised(loop: ModelCluster) -> None:
    agent = scripted(
        {"tool_calls": [{"name": "write_file", "input": {"path": "a", "content": "1"}}]},
        {"tool_calls": [{"name": "write_file", "input": {"path": "b", "content": "2"}}]},
        {"text": "done"},
    )
    run_id = start(loop, agent, budget={"max_steps": 2})
    run = until_status(loop, run_id, "waiting")
    assert run["waiting_for"] == {"type": "budget", "limit": "max_steps", "used": 2, "allowed": 2}
    assert post(loop, f"/v1/runs/{run_id}/budget", {"max_steps": 5}).status_code == 202
    assert until_status(loop, run_id, "completed")["result"] == "done"


def test_a_fork_starts_from_the_workspace_as_it_was_and_diff_finds_the_divergence(loop: ModelCluster) -> None:
    parent_agent = scripted(
        {"tool_calls": [{"name": "write_file", "input": {"path": "f.txt", "content": "v1\n"}}]},
        {"tool_calls": [{"name": "bash", "input": {"command": "echo v2 > f.txt"}}]},
        {"text": "parent done"},
    )
    parent = start(loop, parent_agent)
    until_status(loop, parent, "completed")
    written = next(e["seq"] for e in loop.events(parent) if e["type"] == "tool.result")

    loop.use_script(
        [{}, {"tool_calls": [{"name": "read_file", "input": {"path": "f.txt"}}]}, {"text": "fork done"}]
    )
    response = post(
        loop, f"/v1/runs/{parent}/fork", {"at_seq": written, "overrides": {"model": "openai/fake"}}
    )
    assert response.status_code == 201, response.text
    fork = response.json()
    assert fork["forked_from"] == {"run_id": parent, "seq": written}
    until_status(loop, fork["id"], "completed")
    assert results(loop, fork["id"])[-1]["output"] == "v1\n"  # the file as it was at the fork point

    with loop.cluster.client() as api:
        parent_files = {a["path"]: a for a in api.get(f"/v1/runs/{parent}/artifacts").json()["data"]}
        assert api.get(f"/v1/runs/{parent}/artifacts/f.txt").content == b"v2\n"  # the parent is untouched
        diff = api.get(f"/v1/runs/{parent}/diff/{fork['id']}").json()
    assert "f.txt" in parent_files
    assert diff["diverges_at"] == written + 1
    assert diff["b"][0]["type"] == "run.forked"
    assert diff["a"][0]["seq"] == written + 1
    assert_gapless(loop.events(fork["id"]))


def test_cancelling_a_parent_cancels_both_children(loop: ModelCluster) -> None:
    child = {
        "name": "sleeper",
        "model": "scripted",
        "tools": ["bash"],
        "script": [{"tool_calls": [{"name": "bash", "input": {"command": "sleep 100"}}]}, {"text": "woke"}],
    }
    parent_agent = scripted(
        {
            "tool_calls": [
                {"name": "spawn_agent", "input": {"agent": child, "input": "sleep one"}},
                {"name": "spawn_agent", "input": {"agent": child, "input": "sleep two"}},
            ]
        },
        {"text": "children done"},
        tools=["spawn_agent"],
    )
    parent = start(loop, parent_agent)
    run = until_status(loop, parent, "waiting")
    children = [c["child_run_id"] for c in run["waiting_for"]["children"]]
    assert len(children) == 2
    for child_id in children:
        assert loop.run(child_id)["parent_run_id"] == parent
        until_status(loop, child_id, "running")
    assert post(loop, f"/v1/runs/{parent}/cancel").status_code == 202
    for child_id in children:
        assert until_status(loop, child_id, "cancelled", timeout=30)["status"] == "cancelled"
    eventually_sync(lambda: all(holds_nothing(loop, c) for c in children), timeout=30)


def test_sub_agent_results_come_back_as_tool_results(loop: ModelCluster) -> None:
    child = {"name": "helper", "model": "scripted", "script": [{"text": "the answer is 42"}]}
    parent = start(
        loop,
        scripted(
            {"tool_calls": [{"name": "spawn_agent", "input": {"agent": child, "input": "compute"}}]},
            {"text": "parent got it"},
            tools=["spawn_agent"],
        ),
    )
    until_status(loop, parent, "completed")
    assert results(loop, parent)[0]["output"] == "the answer is 42"


def test_a_client_tool_round_trip(loop: ModelCluster) -> None:
    weather = {
        "name": "lookup_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    run_id = start(
        loop,
        scripted(
            {"tool_calls": [{"name": "lookup_weather", "input": {"city": "Oslo"}}]},
            {"text": "packed an umbrella"},
            tools=[],
            client_tools=[weather],
        ),
    )
    run = until_status(loop, run_id, "waiting")
    assert run["waiting_for"]["type"] == "tool_result"
    [call] = run["waiting_for"]["calls"]
    assert call["name"] == "lookup_weather" and call["input"] == {"city": "Oslo"}
    response = post(loop, f"/v1/runs/{run_id}/tool_results/{call['call_id']}", {"output": "rain"})
    assert response.status_code == 202
    until_status(loop, run_id, "completed")
    assert results(loop, run_id)[0]["output"] == "rain"


def test_bad_control_requests_get_clear_errors_and_change_nothing(loop: ModelCluster) -> None:
    run_id = start(loop, ASK_BASH)
    waiting = until_status(loop, run_id, "waiting")
    events_before = loop.events(run_id)

    def expect(response: Any, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code

    expect(post(loop, f"/v1/runs/{run_id}/approvals/call_nope", {"decision": "allow"}), 404, "call_not_found")
    first_call = next(e["data"]["call_id"] for e in events_before if e["type"] == "tool.call")
    expect(
        post(loop, f"/v1/runs/{run_id}/approvals/{first_call}", {"decision": "allow"}),
        409,
        "not_waiting_for_approval",
    )
    expect(post(loop, f"/v1/runs/{run_id}/approvals/x", {"decision": "maybe"}), 422, "validation_error")
    expect(post(loop, f"/v1/runs/{run_id}/fork", {"at_seq": 10_000}), 422, "invalid_seq")
    expect(post(loop, f"/v1/runs/{run_id}/budget", {"max_steps": 9}), 409, "not_waiting_for_budget")
    expect(
        post(loop, f"/v1/runs/{run_id}/tool_results/{first_call}", {"output": "x"}),
        409,
        "not_waiting_for_tool_result",
    )
    expect(post(loop, "/v1/runs/run_missing/interrupt"), 404, "run_not_found")

    after = loop.run(run_id)
    assert after["status"] == "waiting" and after["waiting_for"] == waiting["waiting_for"]
    assert loop.events(run_id) == events_before
    post(loop, f"/v1/runs/{run_id}/cancel")


def test_the_cli_approves_a_waiting_call(loop: ModelCluster) -> None:
    run_id = start(loop, ASK_BASH)
    run = until_status(loop, run_id, "waiting")
    [call_id] = run["waiting_for"]["call_ids"]
    env = {
        **os.environ,
        "LOOPD_URL": loop.cluster.url,
        "LOOPD_API_KEY": loop.cluster.admin_key,
        "NO_COLOR": "1",
    }
    loopd = str(Path(sys.executable).parent / "loopd")
    shown = subprocess.run([loopd, "show", run_id], capture_output=True, text=True, env=env, timeout=60)
    assert f"loopd approve {run_id} {call_id}" in shown.stdout
    approved = subprocess.run(
        [loopd, "approve", run_id, call_id], capture_output=True, text=True, env=env, timeout=60
    )
    assert approved.returncode == 0, approved.stderr
    until_status(loop, run_id, "completed")
