"""`python -m services.hands` serves until SIGTERM, then drains the calls in flight before exiting."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.processes import ProcessGroup
from harness.waiting import eventually
from services.hands.contract.client import HandsClient
from tests.integration.hands.calls import HANDS_SECRET, bash, new_run
from tests.integration.hands.conftest import remove_labelled

pytestmark = pytest.mark.docker


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir=tmp_path, base_env={"LOOPD_HANDS_SECRET": HANDS_SECRET})
    yield group
    group.stop_all()


async def test_sigterm_drains_the_call_in_flight(
    processes: ProcessGroup, tmp_path: Path, sandbox_image: str, docker_api: docker.APIClient
) -> None:
    hands_id = f"test-hands-{uuid.uuid4().hex[:10]}"
    worker = processes.start(
        "hands",
        "services.hands",
        LOOPD_HANDS_ID=hands_id,
        LOOPD_HANDS_LISTEN="127.0.0.1:0",
        LOOPD_BUS_URL="local://",
        LOOPD_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        LOOPD_SANDBOX_IMAGE=sandbox_image,
    )
    try:

        async def address() -> str | None:
            found = re.search(r"ready at (\S+)", worker.log_path.read_text())
            return found.group(1) if found else None

        async with HandsClient(await eventually(address, timeout=20), secret=HANDS_SECRET) as hands:
            running = asyncio.create_task(bash(hands, new_run(), "echo started; sleep 2; echo done"))

            async def call_running() -> bool:
                return bool((await hands.status()).sandboxes) and (await hands.status()).slots_free < 8

            await eventually(call_running, timeout=20)
            worker.signal(signal.SIGTERM)
            result = await running

        exit_code = await asyncio.to_thread(worker.process.wait, 30)
    finally:
        remove_labelled(docker_api, hands_id)

    assert result.ok and result.output == "started\ndone\n"
    assert exit_code == 0, worker.log_tail()
    assert "stopped" in worker.log_path.read_text()
    assert not docker_api.containers(all=True, filters={"label": f"loopd.hands_id={hands_id}"})
