"""Snapshots cost what changed: the sandbox hashes changed files only, and only contents the worker has
not seen in that sandbox travel to it. The ids stay content-addressed throughout.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

import docker
import pytest

from services.core.artifacts import ArtifactStore
from services.core.bus import Bus
from services.core.settings import Settings
from services.hands.contract.client import HandsClient, ReleaseRequest
from services.hands.sandbox import SandboxSpec, WorkspaceScan
from services.hands.sandbox.docker import DockerDriver
from services.hands.server import HANDS_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, bash, new_run, request, send, starting_at
from tests.integration.hands.conftest import remove_labelled
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


class CountingDriver(DockerDriver):
    """Records each file content read from a sandbox (alone or in a batch), and how many files each
    scan hashed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []
        self.hashed: list[int] = []

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        scanned = await super().scan(sandbox_id, path, limit=limit)
        self.hashed.append(scanned.hashed)
        return scanned

    async def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        self.reads.append(path)
        async for chunk in super().read(sandbox_id, path):
            yield chunk

    async def read_many(
        self, sandbox_id: str, files: Sequence[tuple[str, int]]
    ) -> AsyncGenerator[tuple[int, bytes | None], None]:
        self.reads += [path for path, _ in files]
        async for item in super().read_many(sandbox_id, files):
            yield item

    def reset(self) -> None:
        self.reads, self.hashed = [], []


@pytest.fixture
async def counted(
    bus: Bus, artifacts: ArtifactStore, docker_api: docker.APIClient, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[CountingDriver, HandsClient]]:
    settings = make_settings(hands_warm_pool=0)
    hands_id = settings.hands_id or ""
    driver = CountingDriver(
        SandboxSpec.from_settings(settings, {HANDS_LABEL: hands_id}), base_url=settings.sandbox_docker_host
    )
    try:
        async with (
            HandsWorker(settings, bus, artifacts, driver=driver) as worker,
            HandsClient(worker.address, secret=HANDS_SECRET) as client,
        ):
            yield driver, client
    finally:
        await driver.aclose()
        remove_labelled(docker_api, hands_id)


async def test_an_unchanged_workspace_moves_no_content(counted: tuple[CountingDriver, HandsClient]) -> None:
    driver, hands = counted
    run_id = new_run()
    built = await bash(hands, run_id, "mkdir -p d; for f in a b c d/e; do echo $f > $f.txt; done")
    assert sorted(driver.reads) == [f"/workspace/{f}.txt" for f in ("a", "b", "c", "d/e")]
    driver.reset()

    same = await bash(hands, run_id, "cat a.txt > /dev/null")

    assert same.snapshot_after == built.snapshot_after
    assert driver.reads == []


async def test_one_changed_file_is_the_only_content_moved(
    counted: tuple[CountingDriver, HandsClient],
) -> None:
    driver, hands = counted
    run_id = new_run()
    built = await bash(hands, run_id, "for f in a b c; do echo $f > $f.txt; done; sleep 0.2")
    await bash(hands, run_id, "true")  # files written just before a scan are hashed once more
    driver.reset()

    changed = await bash(hands, run_id, "echo more >> b.txt")
    back = await bash(hands, run_id, "echo b > b.txt")

    assert driver.reads == ["/workspace/b.txt"]
    assert driver.hashed[0] == 1
    assert changed.snapshot_after != built.snapshot_after
    # Same content, same id: b.txt's old content was seen already, so nothing moved either.
    assert back.snapshot_after == built.snapshot_after


async def test_a_restored_workspace_moves_nothing_back(counted: tuple[CountingDriver, HandsClient]) -> None:
    driver, hands = counted
    run_id = new_run()
    built = await bash(hands, run_id, "seq 1000 > numbers.txt; echo x > x.txt")
    await hands.release(ReleaseRequest(run_id))
    driver.reset()

    listed = await send(
        hands, starting_at(request(run_id, "bash", {"command": "cat x.txt"}), built.snapshot_after)
    )

    assert listed.sandbox_created and listed.output == "x\n"
    assert listed.snapshot_after == built.snapshot_after
    assert driver.reads == []
