"""The commands that steer a run (approve, deny, reply, interrupt, budget, tool-result, fork, diff),
and how `show`, `logs` and `--follow` tell a person what a waiting run needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from loopd.cli import app
from typer.testing import CliRunner

from tests.unit.client.fake_gateway import FORK_ID, RUN_ID, FakeGateway, completed_run_events, event
from tests.unit.client.test_control_calls import APPROVAL, BUDGET, QUESTION

UseGateway = Callable[[FakeGateway], None]


def invoke(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


def test_approve_prints_the_run_s_new_status(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for=APPROVAL)
    use_gateway(gateway)
    result = invoke("approve", RUN_ID, "c1", "-m", "build/ is disposable")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{RUN_ID} running"
    assert gateway.bodies() == [
        (f"/v1/runs/{RUN_ID}/approvals/c1", {"decision": "allow", "message": "build/ is disposable"})
    ]


def test_deny_needs_a_reason_for_the_model(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for=APPROVAL)
    use_gateway(gateway)
    assert invoke("deny", RUN_ID, "c1").exit_code == 2
    assert gateway.requests == []
    result = invoke("deny", RUN_ID, "c1", "-m", "never delete build/")
    assert result.exit_code == 0, result.output
    assert gateway.bodies()[-1][1] == {"decision": "deny", "message": "never delete build/"}


def test_approving_a_call_the_run_does_not_wait_for_is_an_error_line(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([], status="running"))
    result = invoke("approve", RUN_ID, "c1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error not_waiting_for_approval:")


def test_reply_sends_text_or_with_json_a_parsed_value(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for={"type": "input", "call_id": "c3", "question": "Name?"})
    use_gateway(gateway)
    assert invoke("reply", RUN_ID, "Ada").exit_code == 0
    gateway.waiting_for = QUESTION
    result = invoke("reply", RUN_ID, '{"colour": "teal"}', "--json")
    assert result.exit_code == 0, result.output
    assert [body for _, body in gateway.bodies()] == [{"content": "Ada"}, {"content": {"colour": "teal"}}]


def test_reply_refuses_json_that_does_not_parse_before_sending(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for=QUESTION)
    use_gateway(gateway)
    result = invoke("reply", RUN_ID, "--json", "{colour: teal}")
    assert result.exit_code == 2
    assert result.stderr.startswith("error invalid_json: the answer is not valid JSON")
    assert gateway.requests == []


def test_an_answer_the_schema_refuses_says_why(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([], waiting_for=QUESTION))
    result = invoke("reply", RUN_ID, "teal")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error answer_invalid: the answer must be an object with a `colour`"


def test_interrupt_pauses_or_with_a_message_steers(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], status="running")
    use_gateway(gateway)
    paused = invoke("interrupt", RUN_ID)
    assert (paused.exit_code, paused.stdout.strip()) == (0, f"{RUN_ID} waiting")
    assert invoke("interrupt", RUN_ID, "-m", "stop and summarise").exit_code == 0
    assert [body for _, body in gateway.bodies()] == [{}, {"message": "stop and summarise"}]


def test_budget_sends_the_new_limits_under_their_api_names(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for=BUDGET)
    use_gateway(gateway)
    result = invoke(
        "budget", RUN_ID, "--max-steps", "100", "--max-tokens", "200000", "--max-cost-usd", "2.5",
        "--max-wall-time", "7200",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert gateway.bodies() == [
        (
            f"/v1/runs/{RUN_ID}/budget",
            {"max_steps": 100, "max_tokens": 200000, "max_cost_usd": 2.5, "max_wall_time_seconds": 7200},
        )
    ]


def test_budget_without_a_limit_is_refused_before_any_request(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([], waiting_for=BUDGET)
    use_gateway(gateway)
    result = invoke("budget", RUN_ID)
    assert result.exit_code == 2
    assert "at least one of --max-steps" in result.stderr
    assert gateway.requests == []


def test_budget_for_a_run_that_waits_for_something_else_is_an_error_line(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([], waiting_for=APPROVAL))
    result = invoke("budget", RUN_ID, "--max-steps", "10")
    assert result.exit_code == 2
    assert result.stderr.startswith("error not_waiting_for_budget:")


def test_a_run_can_start_with_budget_overrides(use_gateway: UseGateway, tmp_path: Any) -> None:
    gateway = FakeGateway([])
    use_gateway(gateway)
    spec = tmp_path / "agent.yaml"
    spec.write_text("model: scripted\npermissions: {bash: ask}\n")
    result = invoke("run", "go", "--agent", str(spec), "--max-cost-usd", "0.5", "--max-steps", "9")
    assert result.exit_code == 0, result.output
    body = gateway.bodies()[0][1]
    assert body["budget"] == {"max_steps": 9, "max_cost_usd": 0.5}
    assert body["agent"]["permissions"] == {"bash": "ask"}


def test_tool_result_posts_the_output_and_marks_errors(use_gateway: UseGateway) -> None:
    waiting = {"type": "tool_result", "call_ids": ["c4"]}
    gateway = FakeGateway([], waiting_for=waiting)
    use_gateway(gateway)
    assert invoke("tool-result", RUN_ID, "c4", "--output", '{"plan": "pro"}').exit_code == 0
    gateway.waiting_for = waiting
    result = invoke("tool-result", RUN_ID, "c4", "--output", "-", "--error", input="CRM timed out\n")
    assert result.exit_code == 0, result.output
    assert [body for _, body in gateway.bodies()] == [
        {"output": '{"plan": "pro"}', "ok": True},
        {"output": "CRM timed out\n", "ok": False},
    ]


def test_fork_prints_the_new_run_and_where_it_came_from(use_gateway: UseGateway) -> None:
    gateway = FakeGateway([])
    use_gateway(gateway)
    result = invoke(
        "fork", RUN_ID, "--at", "4", "--model", "openai/gpt-4o", "--system", "Be terse.",
        "--tool-result", "c1=exit 1: tests failed",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [FORK_ID, f"forked from {RUN_ID} at seq 4"]
    assert gateway.bodies()[0][1] == {
        "at_seq": 4,
        "overrides": {
            "model": "openai/gpt-4o",
            "system": "Be terse.",
            "tool_result": {"call_id": "c1", "output": "exit 1: tests failed"},
        },
    }


@pytest.mark.parametrize("args", [["--at", "4", "--tool-result", "no-equals-sign"], ["--at", "0"], []])
def test_fork_refuses_malformed_options_before_any_request(use_gateway: UseGateway, args: list[str]) -> None:
    gateway = FakeGateway([])
    use_gateway(gateway)
    assert invoke("fork", RUN_ID, *args).exit_code == 2
    assert gateway.requests == []


def test_diff_prints_where_runs_diverge_then_each_side_s_events(use_gateway: UseGateway) -> None:
    diverged = {
        "diverges_at": 5,
        "a": [event(5, "tool.result", call_id="c1", ok=False, output="FAILED", exit_code=1)],
        "b": [
            event(5, "run.forked", **{"from": {"run_id": RUN_ID, "seq": 4}, "overrides": {"model": "m2"}}),
            event(6, "run.completed", result="All green."),
        ],
    }
    use_gateway(FakeGateway([], diff_result=diverged))
    result = invoke("diff", RUN_ID, FORK_ID)
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == f"{RUN_ID} and {FORK_ID} diverge at seq 5"
    side_a, side_b = lines.index(f"{RUN_ID}: 1 event"), lines.index(f"{FORK_ID}: 2 events")
    assert side_a < side_b
    assert "tool.result" in "\n".join(lines[side_a:side_b])
    assert lines[side_b + 1].split()[:2] == ["5", "run.forked"]
    assert f"from {RUN_ID} at seq 4 · model m2" in lines[side_b + 1]
    assert lines[side_b + 2].split()[:2] == ["6", "run.completed"]


def test_diff_of_identical_runs_says_so(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([]))
    result = invoke("diff", RUN_ID, FORK_ID)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{RUN_ID} and {FORK_ID} have the same events"


def test_show_says_what_a_waiting_run_needs_and_the_command_that_gives_it(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([], waiting_for=APPROVAL))
    result = invoke("show", RUN_ID)
    assert result.exit_code == 0, result.output
    assert "waiting" in result.stdout
    assert (
        f"waiting for approval of call c1 (bash: rm -rf build) → loopd approve {RUN_ID} c1" in result.stdout
    )
    assert f"loopd deny {RUN_ID} c2 -m REASON" in result.stdout


@pytest.mark.parametrize(
    ("waiting_for", "hint"),
    [
        (QUESTION, f"loopd reply {RUN_ID} --json JSON"),
        (BUDGET, f"loopd budget {RUN_ID} --max-steps 100"),
        ({"type": "tool_result", "call_ids": ["c4"]}, f"loopd tool-result {RUN_ID} c4 --output TEXT"),
        ({"type": "child", "call_id": "c5", "child_run_id": "run_kid"}, "loopd logs run_kid --follow"),
        ({"type": "interrupt"}, f"loopd send {RUN_ID} MESSAGE"),
    ],
)
def test_show_gives_a_command_for_every_kind_of_wait(
    use_gateway: UseGateway, waiting_for: dict[str, Any], hint: str
) -> None:
    use_gateway(FakeGateway([], waiting_for=waiting_for))
    result = invoke("show", RUN_ID)
    assert result.exit_code == 0, result.output
    assert hint in result.stdout


def test_following_prints_the_waiting_hint_and_goes_on_until_the_run_ends(use_gateway: UseGateway) -> None:
    events = [
        *completed_run_events()[:4],
        event(5, "run.waiting", waiting_for=APPROVAL),
        event(6, "tool.approval", call_id="c1", decision="allow", message=None),
        event(7, "tool.approval", call_id="c2", decision="deny", message="leave a.py alone"),
        event(8, "tool.result", call_id="c1", ok=True, output="", exit_code=0),
        event(9, "run.completed", result="Cleaned."),
    ]
    use_gateway(FakeGateway(events, drop_after=[5]))
    result = invoke("logs", RUN_ID, "--follow")
    assert result.exit_code == 0, result.output
    waiting_line = next(line for line in result.stdout.splitlines() if "run.waiting" in line)
    assert waiting_line.split()[0] == "5"
    assert f"approval of call c1 (bash: rm -rf build) → loopd approve {RUN_ID} c1" in waiting_line
    assert f"loopd approve {RUN_ID} c2" in result.stdout
    assert "call c2 denied: leave a.py alone" in result.stdout
    assert "run.completed" in result.stdout


def test_run_follow_does_not_stop_at_a_wait(use_gateway: UseGateway, tmp_path: Any) -> None:
    events = [
        event(1, "run.created", input="ask me"),
        event(2, "run.waiting", waiting_for={"type": "input", "call_id": "c1", "question": "Name?"}),
        event(3, "user.message", content="Ada"),
        event(4, "run.completed", result="Hello, Ada."),
    ]
    use_gateway(FakeGateway(events))
    spec = tmp_path / "agent.yaml"
    spec.write_text("model: scripted\ntools: [ask_user]\n")
    result = invoke("run", "ask me", "--agent", str(spec), "--follow")
    assert result.exit_code == 0, result.output
    assert f"waiting for an answer to call c1: Name? → loopd reply {RUN_ID} ANSWER" in result.stdout
    assert result.stdout.rstrip().endswith("Hello, Ada.")


def test_the_runs_table_says_what_a_waiting_run_waits_for(use_gateway: UseGateway) -> None:
    use_gateway(FakeGateway([], waiting_for=BUDGET))
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    assert "waiting for budget" in result.stdout
