"""The file tools work inside /workspace only, and a run's files persist between its calls."""

from __future__ import annotations

import pytest

from services.core.settings import Settings
from services.hands.contract.client import HandsClient
from tests.integration.hands.calls import bash, call, new_run
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


async def test_write_read_edit_list_round_trip(hands: HandsClient) -> None:
    run_id = new_run()

    wrote = await call(hands, run_id, "write_file", path="src/app.py", content="x = 1\nprint(x)\n")
    edited = await call(hands, run_id, "edit_file", path="src/app.py", old_string="x = 1", new_string="x = 2")
    read = await call(hands, run_id, "read_file", path="/workspace/src/app.py")
    listed = await call(hands, run_id, "list_files")
    ran = await bash(hands, run_id, "python3 src/app.py")

    assert wrote.ok and wrote.output == "wrote 15 bytes to src/app.py"
    assert edited.ok, edited.output
    assert read.ok and read.output == "x = 2\nprint(x)\n"
    assert listed.ok and listed.output.splitlines() == ["src/", "src/app.py"]
    assert ran.ok and ran.output == "2\n"


async def test_files_written_by_tools_belong_to_the_agent(hands: HandsClient) -> None:
    run_id = new_run()
    await call(hands, run_id, "write_file", path="run.sh", content="echo one\n")
    await bash(hands, run_id, "chmod +x run.sh")

    await call(hands, run_id, "write_file", path="run.sh", content="echo two\n")
    result = await bash(hands, run_id, "echo 'echo three' >> run.sh && ./run.sh && stat -c %u run.sh")

    assert result.ok, result.output
    assert result.output == f"two\nthree\n{Settings().sandbox_user.split(':')[0]}\n"


async def test_edit_needs_exactly_one_occurrence(hands: HandsClient) -> None:
    run_id = new_run()
    await call(hands, run_id, "write_file", path="a.txt", content="same same\n")

    missing = await call(hands, run_id, "edit_file", path="a.txt", old_string="other", new_string="x")
    twice = await call(hands, run_id, "edit_file", path="a.txt", old_string="same", new_string="x")
    unchanged = await call(hands, run_id, "read_file", path="a.txt")

    assert missing.error == "tool_error" and "not found" in (missing.error_message or "")
    assert twice.error == "tool_error" and "2 times" in (twice.error_message or "")
    assert unchanged.output == "same same\n"


async def test_reading_a_missing_file_is_a_tool_error(hands: HandsClient) -> None:
    result = await call(hands, new_run(), "read_file", path="nope.txt")

    assert not result.ok and result.error == "tool_error"
    assert result.output == "error: no such file: /workspace/nope.txt"


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../../etc/passwd", "link/passwd"])
async def test_paths_outside_the_workspace_are_refused(hands: HandsClient, path: str) -> None:
    run_id = new_run()
    await bash(hands, run_id, "ln -s /etc link")

    read = await call(hands, run_id, "read_file", path=path)
    write = await call(hands, run_id, "write_file", path=path, content="x")

    assert read.error == "tool_error" and "outside /workspace" in (read.error_message or "")
    assert write.error == "tool_error" and "outside /workspace" in (write.error_message or "")


async def test_large_files_are_written_whole_and_read_up_to_the_cap(hands: HandsClient) -> None:
    run_id = new_run()
    content = "0123456789abcde\n" * 131072  # 2 MiB: larger than one argv entry and than the cap

    wrote = await call(hands, run_id, "write_file", path="big.txt", content=content)
    size = await bash(hands, run_id, "stat -c %s big.txt")
    read = await call(hands, run_id, "read_file", path="big.txt")

    assert wrote.ok and size.output == f"{len(content)}\n"
    assert read.ok and read.truncated
    assert read.output.startswith(content[: 1024 * 1024])


async def test_files_persist_within_a_run_and_runs_are_isolated(hands: HandsClient) -> None:
    first, second = new_run(), new_run()

    a = await bash(hands, first, "echo kept > note.txt")
    b = await bash(hands, first, "cat note.txt")
    c = await bash(hands, second, "cat note.txt")

    assert a.sandbox_created and not b.sandbox_created and b.output == "kept\n"
    assert c.sandbox_created and c.sandbox_id != a.sandbox_id
    assert c.error == "nonzero_exit"


async def test_coreutils_list_and_stat_the_workspace(hands: HandsClient) -> None:
    """Under runsc too: its 2022 release refuses the statx flag coreutils passes, which the shim it
    preloads there drops (deploy/gvisor/statx.c)."""
    run_id = new_run()
    await call(hands, run_id, "write_file", path="a.txt", content="abc\n")

    result = await bash(
        hands, run_id, "ls -l a.txt | cut -c1-10; stat -c '%s %u' a.txt; ls -d /workspace /tmp"
    )

    assert result.ok, result.output
    uid = Settings().sandbox_user.split(":")[0]
    assert result.output == f"-rw-r--r--\n4 {uid}\n/tmp\n/workspace\n"
