"""What gVisor costs a sandbox: the cold start (create → first tool call done, warm pool off) and a
tool call's round trip (`true` through the bash tool, warm sandbox) under runc and under runsc, each
runsc figure also as a ratio to runc's, measured in one run, with a bare `docker run --rm IMAGE true`
under each runtime for reference.

    .venv/bin/python -m bench.runtimes [--trials 15] [--calls 200]

Starts one hands worker per runtime (`python -m services.hands`, in-process bus, loopback, pool size
0) and alternates the trials between them, so a change of the machine's load falls on both. The
engine must have runsc registered (`deploy/setup.sh bench` does it; see docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid

from bench._support import machine, median, percentile, table
from bench.acquire import first_calls
from bench.tool_call import docker, hands_round_trips, hands_worker, timed
from services.core.settings import Settings
from services.core.tools import Tool
from services.hands.contract.client import ExecuteRequest, HandsClient, ReleaseRequest

RUNTIMES = ("runc", "runsc")
# Round trips per turn of one runtime: long enough to reach a steady state, short enough to alternate.
CHUNK = 25


async def kernel(client: HandsClient) -> str:
    """The kernel the runtime's tools see (gVisor reports its own)."""
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    command = "uname -r; dmesg 2>/dev/null | head -n 1 || true"
    result = await client.execute_collect(
        ExecuteRequest(run_id, uuid.uuid4().hex, Tool.BASH, {"command": command}, 30.0)
    )
    await client.release(ReleaseRequest(run_id))
    return " / ".join(line.strip() for line in result.output.splitlines() if line.strip()) or "?"


def rows(samples: dict[str, list[float]]) -> list[tuple[object, ...]]:
    base = median(samples["runc"])
    return [
        (runtime, len(values), median(values), percentile(values, 0.95), median(values) / base)
        for runtime, values in samples.items()
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    image = Settings().sandbox_image
    cold: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
    calls: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            runtime: (await stack.enter_async_context(hands_worker(warm_pool=0, sandbox_runtime=runtime)))[0]
            for runtime in RUNTIMES
        }
        kernels = {runtime: await kernel(client) for runtime, client in clients.items()}
        for _ in range(args.trials):
            for runtime, client in clients.items():
                cold[runtime] += await first_calls(client, 1)
        for _ in range(max(1, args.calls // CHUNK)):
            for runtime, client in clients.items():
                calls[runtime] += (await hands_round_trips(client, CHUNK))[0]
    bare: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
    for _ in range(args.trials):
        for runtime in RUNTIMES:
            run = ("run", "--rm", "--runtime", runtime, "--network", "none", image, "true")
            bare[runtime] += timed(lambda run=run: docker(*run), 1)  # type: ignore[misc]
    print(f"machine: {machine()}")
    for runtime, seen in kernels.items():
        print(f"kernel seen in a {runtime} sandbox: {seen}")
    header = ("runtime", "n", "median [ms]", "p95 [ms]", "x runc")
    print(table("Cold start: create → first tool call (`true`) done, pool size 0", header, rows(cold)))
    print(table("Tool call round trip: `true` via the bash tool, warm sandbox", header, rows(calls)))
    print(table("`docker run --rm --runtime RUNTIME IMAGE true`", header, rows(bare)))


if __name__ == "__main__":
    asyncio.run(main())
