"""The Managed Agents toolset's tools (read, write, edit, glob, grep, and bash with its own input) run
in a real sandbox, inside /workspace only, like loopd's own file tools."""

from __future__ import annotations

import pytest

from services.hands.contract.client import HandsClient
from tests.integration.hands.calls import bash, call, new_run
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


async def test_write_edit_read_glob_and_grep_round_trip(hands: HandsClient) -> None:
    run_id = new_run()

    wrote = await call(hands, run_id, "write", file_path="src/app.py", content="a = 1\nb = 1\nprint(a + b)\n")
    once = await call(hands, run_id, "edit", file_path="src/app.py", old_string="a = 1", new_string="a = 2")
    every = await call(
        hands, run_id, "edit", file_path="src/app.py", old_string="1", new_string="3", replace_all=True
    )
    whole = await call(hands, run_id, "read", file_path="/workspace/src/app.py")
    middle = await call(hands, run_id, "read", file_path="src/app.py", view_range=[2, 2])
    await call(hands, run_id, "write", file_path="README.md", content="print nothing\n")
    found = await call(hands, run_id, "glob", pattern="**/*.py")
    hits = await call(hands, run_id, "grep", pattern=r"print\(")
    ran = await bash(hands, run_id, "python3 src/app.py")

    assert wrote.ok and once.ok and every.ok, (wrote.output, once.output, every.output)
    assert whole.output == "a = 2\nb = 3\nprint(a + b)\n"
    assert middle.output == "b = 3\n"
    assert found.ok and found.output.splitlines() == ["src/app.py"]
    assert hits.ok and hits.output.splitlines() == ["src/app.py:3:print(a + b)"]
    assert ran.ok and ran.output == "5\n"


async def test_toolset_paths_stay_inside_the_workspace(hands: HandsClient) -> None:
    run_id = new_run()
    outside = await call(hands, run_id, "read", file_path="../etc/passwd")
    await bash(hands, run_id, "ln -s /etc escape")
    through_link = await call(hands, run_id, "grep", pattern="root", path="escape")
    ambiguous = await call(hands, run_id, "write", file_path="x.txt", content="x x\n")
    twice = await call(hands, run_id, "edit", file_path="x.txt", old_string="x", new_string="y")

    assert outside.error == "tool_error" and "outside /workspace" in (outside.error_message or "")
    assert through_link.error == "tool_error" and "outside /workspace" in (through_link.error_message or "")
    assert ambiguous.ok and twice.error == "tool_error" and "replace_all" in (twice.error_message or "")


async def test_bash_takes_the_toolsets_input(hands: HandsClient) -> None:
    run_id = new_run()
    ran = await call(hands, run_id, "bash", command="echo hi", timeout_ms=20_000)
    restarted = await call(hands, run_id, "bash", restart=True)
    slow = await call(hands, run_id, "bash", command="sleep 30", timeout_ms=500)

    assert ran.ok and ran.output == "hi\n"
    assert restarted.ok
    assert slow.error == "timeout"
