"""The calls that steer a run and travel in its time: what goes on the wire, and what comes back."""

from __future__ import annotations

import pytest
from loopd import AsyncClient, Client, LoopdAPIError, LoopdError
from loopd.models import Run

from tests.unit.client.fake_gateway import FORK_ID, RUN_ID, FakeGateway, event

APPROVAL = {
    "type": "approval",
    "call_ids": ["c1", "c2"],
    "calls": [
        {"call_id": "c1", "name": "bash", "input": {"command": "rm -rf build"}},
        {"call_id": "c2", "name": "write_file", "input": {"path": "a.py", "content": "x = 1\n"}},
    ],
}
QUESTION = {
    "type": "input",
    "call_id": "c3",
    "question": "Which colour?",
    "schema": {"type": "object", "required": ["colour"]},
}
BUDGET = {"type": "budget", "limit": "max_steps", "used": 50, "allowed": 50}


def client_for(gateway: FakeGateway) -> Client:
    return Client("http://loopd.test", transport=gateway.transport())


def test_approving_and_denying_post_a_decision_for_the_call() -> None:
    gateway = FakeGateway([], waiting_for=APPROVAL)
    with client_for(gateway) as client:
        approved = client.approve(RUN_ID, "c1")
        gateway.waiting_for = APPROVAL
        client.approve(RUN_ID, "c1", message="fine, it is a build dir")
        gateway.waiting_for = APPROVAL
        client.deny(RUN_ID, "c2", "do not touch a.py")
    assert approved.status == "running"
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/approvals/c1", {"decision": "allow"}),
        (f"/v1/runs/{RUN_ID}/approvals/c1", {"decision": "allow", "message": "fine, it is a build dir"}),
        (f"/v1/runs/{RUN_ID}/approvals/c2", {"decision": "deny", "message": "do not touch a.py"}),
    ]


def test_a_call_id_is_one_path_segment_however_it_is_spelt() -> None:
    gateway = FakeGateway([], waiting_for={"type": "approval", "call_ids": ["toolu/1 x"]})
    with client_for(gateway) as client:
        client.approve(RUN_ID, "toolu/1 x")
    assert gateway.requests[-1].url.raw_path.decode() == f"/v1/runs/{RUN_ID}/approvals/toolu%2F1%20x"


def test_a_reply_sends_any_json_value_as_the_message_content() -> None:
    gateway = FakeGateway([], waiting_for=QUESTION)
    with client_for(gateway) as client:
        resumed = client.reply(RUN_ID, {"colour": "teal", "shades": [1, 2]})
    assert resumed.status == "running"
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/messages", {"content": {"colour": "teal", "shades": [1, 2]}})
    ]


def test_an_answer_the_schema_refuses_is_an_api_error_that_says_why() -> None:
    gateway = FakeGateway([], waiting_for=QUESTION)
    with client_for(gateway) as client, pytest.raises(LoopdAPIError) as refused:
        client.reply(RUN_ID, "teal")
    assert (refused.value.status_code, refused.value.code) == (422, "answer_invalid")
    assert "colour" in refused.value.message
    assert not refused.value.retryable


def test_an_interrupt_without_a_message_pauses_and_with_one_steers() -> None:
    gateway = FakeGateway([], status="running")
    with client_for(gateway) as client:
        paused = client.interrupt(RUN_ID)
        steered = client.interrupt(RUN_ID, "use the staging database instead")
    assert paused.waiting_for is not None and paused.waiting_for.type == "interrupt"
    assert steered.waiting_for is None
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/interrupt", {}),
        (f"/v1/runs/{RUN_ID}/interrupt", {"message": "use the staging database instead"}),
    ]


def test_raising_a_budget_sends_only_the_limits_given() -> None:
    gateway = FakeGateway([], waiting_for=BUDGET)
    with client_for(gateway) as client:
        client.raise_budget(RUN_ID, max_steps=100, max_cost_usd=2.5)
    assert gateway.bodies() == [(f"/v1/runs/{RUN_ID}/budget", {"max_steps": 100, "max_cost_usd": 2.5})]


def test_raising_a_budget_needs_a_limit_and_a_run_that_waits_for_one() -> None:
    gateway = FakeGateway([], status="running")
    with client_for(gateway) as client:
        with pytest.raises(LoopdError) as empty:
            client.raise_budget(RUN_ID)
        assert empty.value.code == "invalid_budget"
        assert gateway.requests == []
        with pytest.raises(LoopdAPIError) as conflict:
            client.raise_budget(RUN_ID, max_wall_time_seconds=7200)
    assert (conflict.value.status_code, conflict.value.code) == (409, "not_waiting_for_budget")


def test_a_run_can_start_with_its_own_budget() -> None:
    gateway = FakeGateway([])
    with client_for(gateway) as client:
        client.create_run("go", agent_id="coder", budget={"max_tokens": 20_000, "max_cost_usd": None})
        client.create_run("go", agent_id="coder")
    bodies = [body for _, body in gateway.bodies()]
    assert bodies[0]["budget"] == {"max_tokens": 20_000}
    assert "budget" not in bodies[1]


def test_a_fork_sends_the_seq_and_only_the_overrides_given() -> None:
    gateway = FakeGateway([])
    with client_for(gateway) as client:
        forked = client.fork(RUN_ID, 12)
        client.fork(
            RUN_ID,
            7,
            model="openai/gpt-4o",
            system="Be terse.",
            tool_result={"call_id": "c1", "output": "42"},
        )
    assert forked.id == FORK_ID
    assert forked.forked_from is not None and (forked.forked_from.run_id, forked.forked_from.seq) == (
        RUN_ID,
        12,
    )
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/fork", {"at_seq": 12, "overrides": {}}),
        (
            f"/v1/runs/{RUN_ID}/fork",
            {
                "at_seq": 7,
                "overrides": {
                    "model": "openai/gpt-4o",
                    "system": "Be terse.",
                    "tool_result": {"call_id": "c1", "output": "42"},
                },
            },
        ),
    ]


def test_a_diff_reads_the_divergence_and_both_sides_events() -> None:
    gateway = FakeGateway(
        [],
        diff_result={
            "diverges_at": 5,
            "a": [event(5, "tool.result", call_id="c1", ok=True, output="42")],
            "b": [
                event(5, "run.forked", **{"from": {"run_id": RUN_ID, "seq": 4}}),
                event(6, "run.completed"),
            ],
        },
    )
    with client_for(gateway) as client:
        found = client.diff(RUN_ID, FORK_ID)
    assert gateway.requests[-1].url.path == f"/v1/runs/{RUN_ID}/diff/{FORK_ID}"
    assert found.diverges_at == 5
    assert [e.type for e in found.a] == ["tool.result"]
    assert [e.seq for e in found.b] == [5, 6]


def test_a_client_tool_result_is_posted_for_its_call() -> None:
    gateway = FakeGateway([], waiting_for={"type": "tool_result", "call_ids": ["c4"]})
    with client_for(gateway) as client:
        client.submit_tool_result(RUN_ID, "c4", '{"plan": "pro"}')
        gateway.waiting_for = {"type": "tool_result", "call_ids": ["c4"]}
        client.submit_tool_result(RUN_ID, "c4", "CRM timed out", ok=False)
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/tool_results/c4", {"output": '{"plan": "pro"}', "ok": True}),
        (f"/v1/runs/{RUN_ID}/tool_results/c4", {"output": "CRM timed out", "ok": False}),
    ]


def _steer_sync(gateway: FakeGateway) -> None:
    with client_for(gateway) as client:
        client.approve(RUN_ID, "c1", "ok")
        client.deny(RUN_ID, "c2", "no")
        client.reply(RUN_ID, [1, 2])
        client.interrupt(RUN_ID)
        client.raise_budget(RUN_ID, max_tokens=10)
        client.fork(RUN_ID, 3, model="m")
        client.diff(RUN_ID, FORK_ID)
        client.submit_tool_result(RUN_ID, "c4", "out", ok=False)
        client.create_run("go", agent_id="a", budget={"max_steps": 3})


async def _steer_async(gateway: FakeGateway) -> None:
    async with AsyncClient("http://loopd.test", transport=gateway.transport()) as client:
        await client.approve(RUN_ID, "c1", "ok")
        await client.deny(RUN_ID, "c2", "no")
        await client.reply(RUN_ID, [1, 2])
        await client.interrupt(RUN_ID)
        await client.raise_budget(RUN_ID, max_tokens=10)
        await client.fork(RUN_ID, 3, model="m")
        await client.diff(RUN_ID, FORK_ID)
        await client.submit_tool_result(RUN_ID, "c4", "out", ok=False)
        await client.create_run("go", agent_id="a", budget={"max_steps": 3})


async def test_the_async_client_sends_exactly_what_the_sync_client_sends() -> None:
    sync_gateway, async_gateway = FakeGateway([], strict=False), FakeGateway([], strict=False)
    _steer_sync(sync_gateway)
    await _steer_async(async_gateway)

    def wire(gateway: FakeGateway) -> list[tuple[str, str, bytes]]:
        return [(r.method, str(r.url), r.content) for r in gateway.requests]

    assert wire(async_gateway) == wire(sync_gateway)
    assert len(sync_gateway.requests) == 9


def test_a_waiting_run_reads_as_typed_fields_and_keeps_what_it_does_not_know() -> None:
    run = Run.model_validate(
        {
            "id": "run_1",
            "status": "waiting",
            "waiting_for": {**QUESTION, "deadline": "tomorrow"},
            "parent_run_id": "run_0",
            "forked_from": {"run_id": "run_x", "seq": 9},
            "budget": {"max_steps": 50, "max_cost_usd": 1.5, "max_wall_time_seconds": 3600},
        }
    )
    assert run.waiting_for is not None and not run.is_terminal
    assert (run.waiting_for.type, run.waiting_for.call_id, run.waiting_for.question) == (
        "input",
        "c3",
        "Which colour?",
    )
    assert run.waiting_for.answer_schema == {"type": "object", "required": ["colour"]}
    assert run.waiting_for.model_extra is not None and run.waiting_for.model_extra["deadline"] == "tomorrow"
    assert run.parent_run_id == "run_0"
    assert run.forked_from is not None and run.forked_from.seq == 9
    assert run.budget is not None and (run.budget.max_steps, run.budget.max_tokens) == (50, None)
    dumped = run.model_dump(mode="json")
    assert dumped["waiting_for"]["schema"] == QUESTION["schema"]


def test_a_kind_of_wait_this_client_does_not_know_still_reads() -> None:
    run = Run.model_validate({"id": "r", "status": "waiting", "waiting_for": {"type": "quorum", "votes": 2}})
    assert run.waiting_for is not None and run.waiting_for.type == "quorum"
    assert run.waiting_for.calls == [] and run.waiting_for.answer_schema is None
