"""The in-sandbox executor, driven through the Docker driver: it bounds every command and outlives them.

The executor is the sandbox's PID 1: a command that kills everything it can, or signals PID 1, must
leave it serving; a timeout must kill the whole tree; output past the cap is dropped inside.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import docker
import pytest

from services.core.settings import Settings
from services.hands.sandbox import CreateSandbox, ExecExit, ExecOutput, ExecRequest, SandboxSpec
from services.hands.sandbox.docker import DockerDriver
from services.hands.server import HANDS_LABEL
from tests.integration.hands.conftest import remove_labelled
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


@pytest.fixture
async def sandbox(
    sandbox_image: str, docker_api: docker.APIClient, tmp_path: Path, sandbox_runtime: str
) -> AsyncIterator[tuple[DockerDriver, str]]:
    hands_id = f"test-executor-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        sandbox_image=sandbox_image,
        sandbox_memory="256m",
        sandbox_pids=128,
        data_dir=tmp_path / "data",
        sandbox_runtime=sandbox_runtime,
    )
    driver = DockerDriver(
        SandboxSpec.from_settings(settings, {HANDS_LABEL: hands_id}), base_url=settings.sandbox_docker_host
    )
    sandbox_id = ""
    try:
        sandbox_id = await driver.create(CreateSandbox(labels={}))
        yield driver, sandbox_id
    finally:
        if sandbox_id:
            await driver.destroy(sandbox_id)  # with its workspace disk
        await driver.aclose()
        remove_labelled(docker_api, hands_id)


async def run(
    driver: DockerDriver, sandbox_id: str, command: str, timeout: float = 10.0, cap: int | None = None
) -> tuple[list[ExecOutput], ExecExit]:
    return await run_argv(driver, sandbox_id, ("bash", "-c", command), timeout, cap)


async def run_argv(
    driver: DockerDriver,
    sandbox_id: str,
    argv: tuple[str, ...],
    timeout: float = 10.0,
    cap: int | None = None,
) -> tuple[list[ExecOutput], ExecExit]:
    outputs: list[ExecOutput] = []
    async with aclosing(driver.exec(sandbox_id, ExecRequest(argv, timeout, cap))) as items:
        async for item in items:
            if isinstance(item, ExecExit):
                return outputs, item
            outputs.append(item)
    raise AssertionError("no ExecExit")


def text(outputs: list[ExecOutput], stream: str = "stdout") -> str:
    return b"".join(o.data for o in outputs if o.stream == stream).decode()


async def test_the_executor_survives_a_command_that_kills_everything_it_can(
    sandbox: tuple[DockerDriver, str], sandbox_runtime: str
) -> None:
    driver, sandbox_id = sandbox

    await run(driver, sandbox_id, "kill -KILL -1; kill -TERM 1; kill -STOP 1; true")
    outputs, end = await run(driver, sandbox_id, "echo still here; ps -o pid= -p 1")
    killed, _ = await run(driver, sandbox_id, "kill -KILL 1; sleep 5")

    assert end.exit_code == 0 and not end.lost
    assert text(outputs).split() == ["still", "here", "1"]
    if sandbox_runtime == "runsc":
        # gVisor (runsc 2022) delivers a SIGKILL sent to its init from inside: a tool can end its own
        # sandbox, which is then reported lost (docs/security.md, Runtimes).
        assert killed == [] and not await driver.alive(sandbox_id)
    else:
        # Linux drops it: the kernel shields a pid namespace's init from its own processes.
        assert await driver.alive(sandbox_id)


async def test_signals_a_command_sends_to_pid_1_leave_the_executor_serving(
    sandbox: tuple[DockerDriver, str],
) -> None:
    driver, sandbox_id = sandbox

    for name in ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2"):
        _, sent = await run(driver, sandbox_id, f"kill -{name} 1 && echo sent")
        assert sent.exit_code == 0 and not sent.lost, name
    outputs, end = await run(driver, sandbox_id, "echo still here; ps -o pid= -p 1")

    assert end.exit_code == 0 and not end.lost
    assert text(outputs).split() == ["still", "here", "1"]
    assert await driver.alive(sandbox_id)


async def test_commands_get_the_default_signal_dispositions_back(
    sandbox: tuple[DockerDriver, str], sandbox_runtime: str
) -> None:
    driver, sandbox_id = sandbox

    spawned, _ = await run(driver, sandbox_id, "exec grep ^SigIgn /proc/self/status")
    # Inline Python helpers run in a fork of the executor rather than through exec.
    forked, _ = await run_argv(
        driver, sandbox_id, ("python3", "-c", "print(open('/proc/self/status').read())")
    )
    interrupted, end = await run(driver, sandbox_id, "kill -INT $$; echo not reached")

    assert end.exit_code == 130 and text(interrupted) == ""
    if sandbox_runtime == "runsc":
        # gVisor's /proc/PID/status has no signal masks; the SIGINT above is what shows them.
        assert "SigIgn" not in text(forked)
    else:
        assert ignored_signals(text(spawned)) == set()
        assert ignored_signals(text(forked)) == set()


def ignored_signals(status: str) -> set[signal.Signals]:
    """The standard signals a /proc/<pid>/status says are ignored (the runtime's own real-time ones aside)."""
    mask = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return {signal.Signals(n) for n in range(1, 32) if mask >> (n - 1) & 1}


# PTRACE_ATTACH to PID 1, printing the errno it fails with.
ATTACH = (
    "import ctypes; c = ctypes.CDLL(None, use_errno=True); c.ptrace(16, 1, 0, 0); print(ctypes.get_errno())"
)


async def test_the_executor_cannot_be_traced_or_read_by_the_sandbox_user(
    sandbox: tuple[DockerDriver, str], sandbox_runtime: str
) -> None:
    driver, sandbox_id = sandbox

    outputs, _ = await run(
        driver, sandbox_id, "cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo denied"
    )
    environ, _ = await run(driver, sandbox_id, "tr '\\0' '\\n' < /proc/1/environ | cut -d= -f1 | sort")
    attached, _ = await run_argv(driver, sandbox_id, ("python3", "-c", ATTACH))

    assert text(attached) == f"{errno.EPERM}\n"
    if sandbox_runtime == "runsc":
        # gVisor (runsc 2022) lets the same uid read a non-dumpable process's /proc files; the
        # executor's environment holds nothing but these.
        assert text(outputs) == "readable\n"
        assert set(text(environ).split()) <= {"HOME", "HOSTNAME", "LANG", "PATH", "TMPDIR"}
    else:
        assert text(outputs) == "denied\n"


async def test_a_timeout_kills_the_whole_tree_even_outside_the_process_group(
    sandbox: tuple[DockerDriver, str],
) -> None:
    driver, sandbox_id = sandbox
    started = time.monotonic()

    outputs, end = await run(
        driver, sandbox_id, "echo go; setsid sleep 1000 & (trap '' TERM; sleep 1001) & wait", timeout=1.0
    )
    elapsed = time.monotonic() - started
    left, _ = await run(driver, sandbox_id, "pgrep -c sleep || true")

    assert end.timed_out and not end.lost
    assert text(outputs) == "go\n"
    assert elapsed < 4.0
    assert left and text(left).strip() == "0"


async def test_output_past_the_cap_is_dropped_inside_the_sandbox(sandbox: tuple[DockerDriver, str]) -> None:
    driver, sandbox_id = sandbox

    outputs, end = await run(driver, sandbox_id, "yes | head -c 3000000; echo err >&2", cap=1000)

    assert end.exit_code == 0
    assert len(text(outputs)) == 1001
    assert text(outputs, "stderr") == "err\n"


async def test_output_streams_while_the_command_runs(
    sandbox: tuple[DockerDriver, str], docker_api: docker.APIClient
) -> None:
    driver, sandbox_id = sandbox
    request = ExecRequest(("bash", "-c", "echo first; read -t 30 < /tmp/fifo; echo second"), 40.0)
    await run(driver, sandbox_id, "mkfifo /tmp/fifo")

    async with aclosing(driver.exec(sandbox_id, request)) as items:
        first = await anext(items)
        # The command is blocked until the fifo is written: the first chunk came before its end.
        assert first == ExecOutput("stdout", b"first\n")
        # The executor runs one request at a time, so the fifo is written from a side door.
        side_door = ["bash", "-c", "echo go > /tmp/fifo"]
        exec_id = docker_api.exec_create(sandbox_id, side_door, user=Settings().sandbox_user)["Id"]
        await asyncio.to_thread(docker_api.exec_start, exec_id)
        rest = [item async for item in items]

    assert rest == [ExecOutput("stdout", b"second\n"), ExecExit(exit_code=0)]


async def test_a_fork_bomb_is_stopped_and_the_executor_serves_on(sandbox: tuple[DockerDriver, str]) -> None:
    driver, sandbox_id = sandbox

    _, end = await run(driver, sandbox_id, ":(){ :|:& };:", timeout=2.0)
    outputs, after = await run(driver, sandbox_id, "ps -e --no-headers | wc -l")

    assert end.timed_out and not end.lost
    assert after.exit_code == 0
    # The executor, and this call's bash, ps and wc.
    assert int(text(outputs)) <= 4
