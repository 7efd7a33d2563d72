"""A tool call's effect on the workspace is applied once: across duplicates, lost results and dead workers.

Every call here appends a line to log.txt, so a call that ran twice, or ran on top of a half-done
attempt, shows up as a doubled line.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from harness.processes import LoopdProcess, ProcessGroup
from harness.servers import RedisServer
from harness.waiting import eventually
from services.core.errors import HandsUnavailable
from services.hands.contract.client import HandsClient, OutputChunk
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from tests.integration.hands.calls import HANDS_SECRET, bash, call, new_run, request, send, starting_at
from tests.integration.hands.conftest import remove_labelled
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]

APPEND = "echo line >> log.txt; echo appended"


async def test_a_duplicate_call_replays_its_recorded_result(hands: HandsClient) -> None:
    run_id = new_run()
    first_call = request(run_id, "bash", {"command": APPEND})
    first = await send(hands, first_call)

    again = await send(hands, first_call)
    log = await call(hands, run_id, "read_file", path="log.txt")

    assert first.ok and not first.replayed
    assert again == replace(first, replayed=True)
    assert log.output == "line\n"


async def test_a_call_reruns_on_its_base_when_its_result_was_never_committed(
    hands: HandsClient, tmp_path: Path
) -> None:
    run_id = new_run()
    base = await call(hands, run_id, "write_file", path="log.txt", content="start\n")
    append = request(run_id, "bash", {"command": APPEND})
    ran = await send(hands, append)
    # The brain died before committing the result, and the recorded result is gone too: the call
    # must run again from the base it was given, not on top of its first run.
    FilesystemLedger(tmp_path / "artifacts" / "ledger").path_of(run_id, append.call_id).unlink()

    rerun = await send(hands, starting_at(append, base.snapshot_after))
    log = await call(hands, run_id, "read_file", path="log.txt")

    assert not rerun.replayed and not rerun.sandbox_created
    assert rerun.snapshot_after == ran.snapshot_after
    assert log.output == "start\nline\n"


async def test_a_call_cut_off_mid_run_reruns_on_its_base(hands: HandsClient) -> None:
    run_id = new_run()
    await call(hands, run_id, "write_file", path="log.txt", content="start\n")
    # /tmp survives a workspace restore, so only the first attempt waits. It is marked before any
    # output: the cut below may kill the call as soon as its first chunk arrives.
    slow = request(
        run_id,
        "bash",
        {
            "command": "[ -e /tmp/tried ] || { touch /tmp/tried; first=1; }; "
            f'{APPEND}; [ -z "$first" ] || sleep 60'
        },
    )
    async with aclosing(hands.execute(slow)) as events:
        async for item in events:
            assert item == OutputChunk("stdout", "appended\n")
            break

    retried = await send(hands, slow)
    log = await call(hands, run_id, "read_file", path="log.txt")

    assert retried.ok and not retried.replayed and not retried.sandbox_created
    assert log.output == "start\nline\n"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir=tmp_path, base_env={"LOOPD_HANDS_SECRET": HANDS_SECRET})
    yield group
    group.stop_all()


@asynccontextmanager
async def hands_process(
    processes: ProcessGroup,
    redis: RedisServer,
    artifacts_dir: Path,
    image: str,
    docker_api: docker.APIClient,
    runtime: str,
) -> AsyncIterator[tuple[LoopdProcess, HandsClient]]:
    """A `python -m services.hands` worker; its containers are removed by its label afterwards."""
    hands_id = f"test-hands-{uuid.uuid4().hex[:10]}"
    worker = processes.start(
        hands_id,
        "services.hands",
        LOOPD_HANDS_ID=hands_id,
        LOOPD_HANDS_LISTEN="127.0.0.1:0",
        LOOPD_BUS_URL=redis.url,
        LOOPD_ARTIFACTS_DIR=str(artifacts_dir),
        LOOPD_SANDBOX_IMAGE=image,
        LOOPD_SANDBOX_RUNTIME=runtime,
    )
    try:

        async def address() -> str | None:
            found = re.search(r"ready at (\S+)", worker.log_path.read_text())
            return found.group(1) if found else None

        async with HandsClient(await eventually(address, timeout=30), secret=HANDS_SECRET) as client:
            yield worker, client
    finally:
        remove_labelled(docker_api, hands_id)


async def test_a_call_on_a_killed_worker_reruns_on_another_from_its_base(
    processes: ProcessGroup,
    redis: RedisServer,
    tmp_path: Path,
    sandbox_image: str,
    docker_api: docker.APIClient,
    sandbox_runtime: str,
) -> None:
    shared = tmp_path / "shared-artifacts"
    hands = (processes, redis, shared, sandbox_image, docker_api, sandbox_runtime)
    async with (
        hands_process(*hands) as (worker_a, hands_a),
        hands_process(*hands) as (_, hands_b),
    ):
        run_id = new_run()
        write = request(run_id, "write_file", {"path": "log.txt", "content": "start\n"})
        wrote = await send(hands_a, write)
        # Outside /workspace: makes the call below wait on A only, whose sandbox has the file.
        await bash(hands_a, run_id, "touch /tmp/hold")
        stuck = request(run_id, "bash", {"command": f"{APPEND}; while [ -e /tmp/hold ]; do sleep 0.1; done"})
        assert stuck.base_snapshot == wrote.snapshot_after

        with pytest.raises(HandsUnavailable):
            async with aclosing(hands_a.execute(stuck)) as events:
                async for item in events:
                    assert item == OutputChunk("stdout", "appended\n")
                    worker_a.kill()
        retried = await send(hands_b, stuck)
        log = await call(hands_b, run_id, "read_file", path="log.txt")
        write_again = await hands_b.execute_collect(write)

    assert worker_a.process.returncode == -9
    assert retried.ok and not retried.replayed and retried.sandbox_created
    assert log.output == "start\nline\n"
    # A's ledger entries outlive A: B replays the call A finished.
    assert write_again == replace(wrote, replayed=True)
