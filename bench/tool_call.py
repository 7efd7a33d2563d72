"""What one tool call costs end to end: HandsClient -> gRPC -> hands -> warm sandbox -> `true` -> back,
against `docker exec CONTAINER true` and `docker run --rm IMAGE true` on the same machine, in one run.

    .venv/bin/python -m bench.tool_call [--calls 300] [--docker-calls 30]

Starts its own hands worker (`python -m services.hands`, in-process bus, loopback, a scratch artifact
store) and stops it; the calls are chained like the brain's (each starts from the previous snapshot).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from services.core.errors import LoopdError
from services.core.settings import Settings
from services.core.tools import Tool
from services.hands.contract.client import ExecuteRequest, HandsClient
from services.hands.server import HANDS_LABEL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def hands_worker(warm_pool: int, **settings: str) -> AsyncIterator[tuple[HandsClient, str]]:
    """A hands process on loopback with `warm_pool` warm sandboxes and these LOOPD_ settings; yields a
    client and its hands_id."""
    hands_id = f"bench-{uuid.uuid4().hex[:8]}"
    secret = uuid.uuid4().hex
    address = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="loopd-bench-") as scratch:
        env = {
            **os.environ,
            "LOOPD_HANDS_ID": hands_id,
            "LOOPD_HANDS_LISTEN": address,
            "LOOPD_BUS_URL": "local://",
            "LOOPD_ARTIFACTS_DIR": str(Path(scratch) / "artifacts"),
            "LOOPD_HANDS_WARM_POOL": str(warm_pool),
            "LOOPD_HANDS_SECRET": secret,
            "LOOPD_DATA_DIR": str(Path(scratch) / "data"),
            **{f"LOOPD_{name.upper()}": value for name, value in settings.items()},
        }
        log = (Path(scratch) / "hands.log").open("wb")
        process = subprocess.Popen(  # noqa: ASYNC220 (nothing else runs on the loop yet)
            [sys.executable, "-m", "services.hands"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            async with HandsClient(address, secret=secret) as client:
                await _until_serving(client, process)
                yield client, hands_id
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            remove_containers(hands_id)


async def _until_serving(client: HandsClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.status()
            return
        except LoopdError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the hands worker did not start") from None
            await asyncio.sleep(0.05)


def remove_containers(hands_id: str) -> None:
    """Remove what a benchmark worker left (only its own containers: they carry its hands_id)."""
    ids = docker("ps", "-aq", "--filter", f"label={HANDS_LABEL}={hands_id}").split()
    if ids:
        docker("rm", "-fv", *ids)


def warm_count(hands_id: str) -> int:
    filters = ("--filter", f"label={HANDS_LABEL}={hands_id}", "--filter", "label=loopd.warm=1")
    return len(docker("ps", "-q", *filters).split())


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def timed(fn: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(rows: list[tuple[str, list[float]]], baseline: str) -> str:
    """Median, p95 and the ratio of each median to the baseline row's, in milliseconds."""
    base = statistics.median(dict(rows)[baseline])
    lines = [f"{'path':<44} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'x ' + baseline[:18]:>22}"]
    for name, samples in rows:
        median = statistics.median(samples)
        lines.append(
            f"{name:<44} {len(samples):>4} {median:>10.2f} {p95(samples):>9.2f} {median / base:>22.3f}"
        )
    return "\n".join(lines)


async def hands_round_trips(client: HandsClient, calls: int) -> tuple[list[float], str]:
    """Chained `true` calls of one run after a first one that takes the sandbox; returns its id too."""
    run_id, base = f"bench-{uuid.uuid4().hex[:10]}", None
    samples, sandbox_id = [], ""
    for index in range(calls + 1):
        request = ExecuteRequest(run_id, uuid.uuid4().hex, Tool.BASH, {"command": "true"}, 30.0, base)
        started = time.perf_counter()
        result = await client.execute_collect(request)
        elapsed = (time.perf_counter() - started) * 1000
        if not result.ok:
            raise RuntimeError(f"the call failed: {result.output}")
        base, sandbox_id = result.snapshot_after, result.sandbox_id
        if index:
            samples.append(elapsed)
    return samples, sandbox_id


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--docker-calls", type=int, default=30)
    args = parser.parse_args()
    image = Settings().sandbox_image
    async with hands_worker(warm_pool=1) as (client, _):
        hands, sandbox_id = await hands_round_trips(client, args.calls)
        exec_samples = timed(lambda: docker("exec", sandbox_id, "true"), args.docker_calls)
        hands_after, _ = await hands_round_trips(client, args.calls // 3)
    run_samples = timed(
        lambda: docker("run", "--rm", "--network", "none", image, "true"), args.docker_calls // 3
    )
    rows = [
        ("hands tool call (gRPC, warm sandbox, true)", hands + hands_after),
        ("docker exec CONTAINER true", exec_samples),
        ("docker run --rm IMAGE true", run_samples),
    ]
    print(table(rows, baseline="hands tool call (gRPC, warm sandbox, true)"))
    exec_median = statistics.median(exec_samples)
    print(f"\nhands / docker exec (medians): {statistics.median(hands + hands_after) / exec_median:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
