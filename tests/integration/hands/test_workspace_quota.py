"""A sandbox's /workspace has a size the kernel enforces, and a snapshot keeps to the run's storage budget.

Writing past the size fails inside the sandbox with ENOSPC and the worker goes on serving; a run asks
for its own size up to the worker's ceiling; a sparse file larger than the budget makes its call a
tool error that costs the artifact store nothing; a sandbox's disk goes with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.hands.contract.client import HandsClient, ReleaseRequest
from services.hands.contract.manifest import EMPTY_SNAPSHOT
from tests.integration.hands.calls import HANDS_SECRET, bash, call, new_run, request, send
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [
    pytest.mark.docker,
    pytest.mark.usefixtures("loop_disks"),
    BOTH_RUNTIMES,
]
MiB = 1024**2


def workspace_bytes(df_output: str) -> int:
    """The size `df -B1 --output=size /workspace` reports."""
    return int(df_output.split()[-1])


def disks_of(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "workspaces").glob("disk-*"))


def mounted_under(folder: Path) -> bool:
    return any(str(folder) in line for line in Path("/proc/self/mounts").read_text().splitlines())


def store_bytes(tmp_path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in (tmp_path / "artifacts").rglob("*") if p.is_file())


async def test_a_write_past_the_workspace_size_fails_with_enospc_and_the_worker_keeps_serving(
    start_worker: Callable[..., Any],
) -> None:
    worker = await start_worker(sandbox_workspace_storage="loop", sandbox_workspace_size="64MiB")
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        run_id = new_run()

        size = await bash(hands, run_id, "df -B1 --output=size /workspace")
        filled = await bash(hands, run_id, "dd if=/dev/zero of=fill bs=1M count=100")
        freed = await bash(hands, run_id, "rm fill && echo freed > note && cat note")
        other = await bash(hands, new_run(), "echo another run")

    assert 56 * MiB < workspace_bytes(size.output) <= 64 * MiB
    assert filled.error == "nonzero_exit"
    assert "No space left on device" in filled.output
    assert freed.ok and freed.output == "freed\n"
    assert freed.sandbox_id == filled.sandbox_id and not freed.sandbox_created
    assert other.ok and other.output == "another run\n"


async def test_write_file_on_a_full_workspace_is_a_tool_error_that_leaves_nothing_behind(
    start_worker: Callable[..., Any],
) -> None:
    worker = await start_worker(sandbox_workspace_storage="loop", sandbox_workspace_size="16MiB")
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        run_id = new_run()
        await bash(hands, run_id, "head -c 15000000 /dev/zero > fill; true")
        written = await call(hands, run_id, "write_file", path="more.txt", content="x" * 4_000_000)
        listed = await bash(hands, run_id, "ls -A")

    assert written.error == "tool_error"
    assert "No space left on device" in (written.error_message or "")
    assert listed.ok and listed.output == "fill\n"


async def test_a_run_gets_the_workspace_size_it_asks_for_up_to_the_ceiling(
    start_worker: Callable[..., Any],
) -> None:
    worker = await start_worker(
        sandbox_workspace_storage="loop",
        sandbox_workspace_size="64MiB",
        sandbox_workspace_max_size="128MiB",
    )
    df = {"command": "df -B1 --output=size /workspace"}
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        asked = await send(hands, replace(request(new_run(), "bash", df), workspace_bytes=96 * MiB))
        greedy = await send(hands, replace(request(new_run(), "bash", df), workspace_bytes=4096 * MiB))
        default = await send(hands, request(new_run(), "bash", df))

    assert 88 * MiB < workspace_bytes(asked.output) <= 96 * MiB
    assert 120 * MiB < workspace_bytes(greedy.output) <= 128 * MiB
    assert 56 * MiB < workspace_bytes(default.output) <= 64 * MiB


async def test_a_sparse_file_above_the_budget_is_a_tool_error_that_costs_the_store_nothing(
    start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    worker = await start_worker(sandbox_workspace_storage="loop", sandbox_workspace_size="1GiB")
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        run_id = new_run()
        kept = await bash(hands, run_id, "echo kept > kept.txt")
        before = store_bytes(tmp_path)
        started = time.monotonic()

        sparse = await bash(hands, run_id, "truncate -s 3G big && echo made")
        elapsed = time.monotonic() - started
        after = await bash(hands, run_id, "ls; cat kept.txt")

    assert not sparse.ok and sparse.error == "tool_error"
    assert sparse.output.startswith("made\n")
    assert "add up to 3.0 GiB" in (sparse.error_message or "")
    assert "storage budget of 1.0 GiB" in (sparse.error_message or "")
    assert sparse.snapshot_after == kept.snapshot_after != EMPTY_SNAPSHOT
    assert elapsed < 10.0
    assert store_bytes(tmp_path) - before < MiB
    # The call's changes are undone: the next call starts from the snapshot before it.
    assert after.ok and after.output == "kept.txt\nkept\n"


async def test_a_file_above_the_file_limit_is_a_tool_error(start_worker: Callable[..., Any]) -> None:
    worker = await start_worker(sandbox_workspace_storage="loop", snapshot_file_max_size="1MiB")
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        result = await bash(hands, new_run(), "head -c 2000000 /dev/zero > two-mb.bin")

    assert result.error == "tool_error"
    assert "/workspace/two-mb.bin is 1.9 MiB" in (result.error_message or "")
    assert "above the 1.0 MiB a snapshot takes of one file" in (result.error_message or "")


async def test_a_sandboxs_disk_is_sparse_and_goes_with_it(
    start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    worker = await start_worker(
        sandbox_workspace_storage="loop", sandbox_workspace_size="512MiB", hands_warm_pool=0
    )
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        run_id = new_run()
        written = await bash(hands, run_id, "head -c 20000000 /dev/urandom > data.bin && sync")
        (disk,) = disks_of(tmp_path)
        held = (disk / "disk.ext4").stat().st_blocks * 512

        await hands.release(ReleaseRequest(run_id))

    assert written.ok, written.output
    # The 512 MiB image holds the 20 MB written and the filesystem's own few megabytes.
    assert 19 * MiB < held < 64 * MiB
    assert disks_of(tmp_path) == []
    assert not mounted_under(disk)
