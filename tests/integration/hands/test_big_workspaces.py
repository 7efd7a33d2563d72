"""Big and unruly workspaces on a real hands worker: the snapshot has a deadline of its own, apart from
the call's, so a slow snapshot is neither cut by the call's timeout nor taken for a dead worker; an
entry the snapshot cannot read is left out and named instead of failing the call; and a workspace of
many small files is snapshotted and restored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import docker
import pytest

from services.core.artifacts import ArtifactStore
from services.core.bus import Bus
from services.core.settings import Settings
from services.hands.contract.client import HandsClient
from services.hands.sandbox import ExecRequest, SandboxSpec, WorkspaceScan
from services.hands.sandbox.docker import DockerDriver
from services.hands.server import HANDS_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, bash, new_run, request, send, starting_at
from tests.integration.hands.conftest import remove_labelled
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]

# Directories of 250-byte names, nested until the path is longer than the kernel takes (4096 bytes).
# Made by Python, which changes directory without asking for the working directory again (bash
# does, and gVisor answers a working directory longer than PATH_MAX with an error glibc asserts on).
DEEP = (
    'python3 -c \'import os\nfor _ in range(17): os.mkdir("0" * 250); os.chdir("0" * 250)\n'
    'open("f", "w").write("deep")\''
)


class SlowScans(DockerDriver):
    """Scans take `delay` seconds longer, as a workspace of many files does."""

    delay = 0.0

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        await asyncio.sleep(self.delay)
        return await super().scan(sandbox_id, path, limit=limit)


class Churning(DockerDriver):
    """A background process that writes `lock.tmp` just before every scan and removes it just after."""

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        await self._sh(sandbox_id, "echo locked > lock.tmp")
        scanned = await super().scan(sandbox_id, path, limit=limit)
        await self._sh(sandbox_id, "rm lock.tmp")
        return scanned

    async def _sh(self, sandbox_id: str, command: str) -> None:
        async for _ in self.exec(sandbox_id, ExecRequest(("sh", "-c", command), timeout=10)):
            pass


@pytest.fixture
def worker_with(
    bus: Bus, artifacts: ArtifactStore, docker_api: docker.APIClient, make_settings: Callable[..., Settings]
) -> Callable[..., Any]:
    """A worker on a driver of the given class, and a client with the given deadline margin."""

    @asynccontextmanager
    async def start(
        driver_class: type[DockerDriver], margin: float = 30.0, **overrides: Any
    ) -> AsyncIterator[tuple[DockerDriver, HandsClient]]:
        settings = make_settings(hands_warm_pool=0, **overrides)
        hands_id = settings.hands_id or ""
        spec = SandboxSpec.from_settings(settings, {HANDS_LABEL: hands_id})
        driver = driver_class(spec, base_url=settings.sandbox_docker_host)
        try:
            async with (
                HandsWorker(settings, bus, artifacts, driver=driver) as worker,
                HandsClient(worker.address, secret=HANDS_SECRET, deadline_margin=margin) as client,
            ):
                yield driver, client
        finally:
            await driver.aclose()
            remove_labelled(docker_api, hands_id)

    return start


async def test_a_snapshot_longer_than_the_calls_deadline_is_waited_for(
    worker_with: Callable[..., Any],
) -> None:
    async with worker_with(SlowScans, margin=1.0) as (driver, hands):
        driver.delay = 4.0
        run_id = new_run()

        # The call's deadline is 1 s + 1 s; its snapshot alone takes 4 s.
        written = await bash(hands, run_id, "echo kept > kept.txt", timeout=1.0)
        driver.delay = 0.0
        read = await bash(hands, run_id, "cat kept.txt", timeout=1.0)

    assert written.ok and read.ok and read.output == "kept\n"


async def test_a_snapshot_past_its_own_deadline_undoes_the_calls_changes(
    worker_with: Callable[..., Any],
) -> None:
    async with worker_with(SlowScans, snapshot_timeout_seconds=1.0) as (driver, hands):
        run_id = new_run()
        base = await bash(hands, run_id, "echo base > kept.txt")
        driver.delay = 3.0

        dropped = await bash(hands, run_id, "echo changed > kept.txt; echo done")
        driver.delay = 0.0
        after = await bash(hands, run_id, "cat kept.txt")

    assert base.ok
    assert (dropped.ok, dropped.error, dropped.snapshot_after) == (
        False,
        "tool_error",
        base.snapshot_after,
    )
    assert dropped.output.startswith(
        "done\n[the workspace could not be saved: its snapshot took longer than the snapshot deadline (1s)"
    )
    assert after.ok and after.output == "base\n" and after.sandbox_created


async def test_a_path_too_long_to_read_is_left_out_and_named(hands: HandsClient) -> None:
    run_id = new_run()

    made = await bash(hands, run_id, f"{DEEP}; echo made")
    listed = await bash(hands, run_id, "find . -name f | wc -l; find . -type d | wc -l")
    restored = await send(
        hands,
        starting_at(request(new_run(), "bash", {"command": "find . -type d | wc -l"}), made.snapshot_after),
    )

    assert made.ok and made.output.startswith("made\n[the workspace snapshot left out 1 entry it could not")
    assert "File name too long" in made.output
    # The call after restored the snapshot: the 16 directories that fit, without the one beyond.
    assert listed.ok and listed.output == "0\n17\n"
    assert restored.ok and restored.output == "17\n"


async def test_a_file_that_vanishes_during_every_scan_is_left_out_and_named(
    worker_with: Callable[..., Any],
) -> None:
    async with worker_with(Churning) as (_, hands):
        run_id = new_run()
        made = await bash(hands, run_id, "echo kept > kept.txt")
        after = await bash(hands, run_id, "cat kept.txt")

    assert made.ok
    assert "- lock.tmp: it vanished while the snapshot was taken" in made.output
    assert after.ok and after.output.startswith("kept\n")


MANY_FILES = """python3 - <<'EOF'
import os
for d in range(100):
    os.mkdir(f"d{{d:02}}")
for i in range({count}):
    with open(f"d{{i % 100:02}}/f{{i:06}}.txt", "w") as f:
        f.write(f"file {{i}}\\n")
EOF"""


async def test_many_small_files_are_snapshotted_and_restored(worker_with: Callable[..., Any]) -> None:
    count = 20_000
    async with worker_with(DockerDriver, margin=5.0) as (_, hands):
        started = time.monotonic()
        made = await bash(hands, new_run(), MANY_FILES.format(count=count), timeout=60)
        snapshotted = time.monotonic() - started
        check = "find . -type f | wc -l; cat d07/f012307.txt"
        restored = await send(
            hands, starting_at(request(new_run(), "bash", {"command": check}, 10), made.snapshot_after)
        )

    assert made.ok, made.output
    assert restored.ok and restored.output == f"{count}\nfile 12307\n", restored.output
    assert snapshotted < 300
