"""A run's tool calls go through dispatch to the hands call path and back into the log, in process."""

from __future__ import annotations

from pathlib import Path

from services.brain.context import tool_result_text
from services.brain.dispatch import PREVIEW_BYTES
from tests.unit.brain.loop import Loop, call, of_type, scripted

WRITE_THEN_READ = scripted(
    {"tool_calls": [call("write_file", path="notes/plan.txt", content="step one\n")]},
    {"tool_calls": [call("bash", command="cat notes/plan.txt"), call("read_file", path="notes/plan.txt")]},
    {"text": "all done"},
)


async def test_tool_calls_run_in_one_sandbox_and_the_run_completes_with_its_files(loop: Loop) -> None:
    run_id = await loop.start(WRITE_THEN_READ)

    run = await loop.until(run_id, "completed")

    events = await loop.events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    results = of_type(events, "tool.result")
    assert [r["ok"] for r in results] == [True, True, True]
    assert results[1]["output"] == "step one\n" and results[2]["output"] == "step one\n"
    assert len(of_type(events, "sandbox.provisioned")) == 1
    assert run["result"] == "all done" and run["usage"]["tool_calls"] == 3
    artifacts = of_type(events, "artifact.created")
    assert [(a["path"], a["size"]) for a in artifacts] == [("notes/plan.txt", 9)]


async def test_a_run_whose_calls_never_changed_the_workspace_completes_without_artifacts(loop: Loop) -> None:
    # Read-only calls report the snapshot they ran on: for a new run, the empty workspace, which has
    # no manifest blob in the artifact store.
    agent = scripted({"tool_calls": [call("list_files", path=".")]}, {"text": "nothing here"})
    run_id = await loop.start(agent)

    run = await loop.until(run_id, "completed")

    events = await loop.events(run_id)
    assert run["result"] == "nothing here"
    assert of_type(events, "tool.result")[0]["output"] == "(empty directory)\n"
    assert of_type(events, "artifact.created") == []


async def test_a_large_output_goes_to_the_artifact_store_and_the_model_sees_where(
    database_url: str, tmp_path: Path
) -> None:
    big = "x" * 10_000 + "\n"
    agent = scripted(
        {"tool_calls": [call("write_file", path="big.txt", content=big)]},
        {"tool_calls": [call("bash", command="cat big.txt")]},
        {"text": "read it"},
    )
    async with Loop(database_url, tmp_path, inline_output_limit=1024) as loop:
        run_id = await loop.start(agent)
        await loop.until(run_id, "completed")
        [_, result] = of_type(await loop.events(run_id), "tool.result")
        stored = await loop.artifacts.get(result["output_ref"]["sha256"])

    assert stored == big.encode() and result["output_ref"]["size"] == len(big)
    assert result["output"] == big[:PREVIEW_BYTES]
    seen = tool_result_text(result)
    assert seen.startswith(result["output"]) and result["output_ref"]["sha256"] in seen


async def test_a_failing_command_is_a_result_for_the_model_not_a_failure_of_the_run(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="exit 3")]}, {"text": "noted"})
    run_id = await loop.start(agent)

    assert (await loop.until(run_id, "completed"))["result"] == "noted"
    [result] = of_type(await loop.events(run_id), "tool.result")
    assert (result["ok"], result["error"], result["exit_code"]) == (False, "nonzero_exit", 3)
