"""What a new run's first tool call costs: with a warm pool, with a cold start (pool size 0), a cold start
whose /workspace is an engine volume rather than a loop disk (what the disk costs), and a bare
`docker run --rm IMAGE true` for reference, measured in one run.

    .venv/bin/python -m bench.acquire [--trials 15]

Starts its own hands workers (`python -m services.hands`, in-process bus, loopback) and stops them.
Each warm trial waits until the pool is full again, so it measures a claim, not a start.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.tool_call import docker, hands_worker, table, timed, warm_count
from services.core.settings import Settings
from services.core.tools import Tool
from services.hands.contract.client import ExecuteRequest, HandsClient, ReleaseRequest

WARM = 2


async def first_calls(client: HandsClient, trials: int, ready: asyncio.Event | None = None) -> list[float]:
    samples = []
    for _ in range(trials):
        run_id = f"bench-{uuid.uuid4().hex[:10]}"
        request = ExecuteRequest(run_id, uuid.uuid4().hex, Tool.BASH, {"command": "true"}, 30.0)
        started = time.perf_counter()
        result = await client.execute_collect(request)
        samples.append((time.perf_counter() - started) * 1000)
        if not (result.ok and result.sandbox_created):
            raise RuntimeError(f"unexpected first call: {result}")
        await client.release(ReleaseRequest(run_id))
    return samples


async def warm_first_calls(client: HandsClient, hands_id: str, trials: int) -> list[float]:
    samples = []
    for _ in range(trials):
        deadline = time.monotonic() + 60
        while await asyncio.to_thread(warm_count, hands_id) < WARM:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm pool did not fill")
            await asyncio.sleep(0.1)
        samples += await first_calls(client, 1)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    image = Settings().sandbox_image
    async with hands_worker(warm_pool=WARM) as (client, hands_id):
        warm = await warm_first_calls(client, hands_id, args.trials)
    async with hands_worker(warm_pool=0) as (client, _):
        cold = await first_calls(client, args.trials)
    async with hands_worker(warm_pool=0, sandbox_workspace_storage="volume") as (client, _):
        volume = await first_calls(client, args.trials)
    bare = timed(lambda: docker("run", "--rm", "--network", "none", image, "true"), args.trials)
    rows = [
        (f"first call, warm pool ({WARM})", warm),
        ("first call, cold (pool size 0)", cold),
        ("first call, cold, workspace an engine volume", volume),
        ("docker run --rm IMAGE true", bare),
    ]
    print(table(rows, baseline="docker run --rm IMAGE true"))


if __name__ == "__main__":
    asyncio.run(main())
