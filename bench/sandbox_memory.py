"""What a live sandbox holds in memory: warm ones waiting in the pool, and ones a run has used, as
`docker stats` reports them (the container's cgroup memory, page cache included), and the hands
worker's own resident memory beside them.

    .venv/bin/python -m bench.sandbox_memory [--sandboxes 4]

Starts its own hands worker (`python -m services.hands`, in-process bus, loopback) with a warm pool of
`--sandboxes`, waits until the pool is full and reads each container's memory; then gives each of
`--sandboxes` runs one `bash` call (`true`), which claims a warm sandbox per run, and reads the
memory of those sandboxes, now idle between calls. Removes every container it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from pathlib import Path

from bench._support import machine, median, rss_bytes
from bench.tool_call import docker, hands_worker, warm_count
from services.core.tools import Tool
from services.hands.contract.client import ExecuteRequest, HandsClient
from services.hands.server import HANDS_LABEL

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6, "GB": 10**9}


def containers(hands_id: str) -> set[str]:
    return set(docker("ps", "-q", "--no-trunc", "--filter", f"label={HANDS_LABEL}={hands_id}").split())


def memory_of(ids: set[str]) -> list[int]:
    """Bytes of memory each container uses, as docker stats reports it."""
    if not ids:
        return []
    out = docker("stats", "--no-stream", "--format", "{{json .}}", *sorted(ids))
    return [_bytes(json.loads(line)["MemUsage"].split("/")[0]) for line in out.splitlines() if line.strip()]


def _bytes(text: str) -> int:
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if match is None:
        raise ValueError(f"unexpected memory figure {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2)])


async def wait_full(hands_id: str, size: int) -> None:
    deadline = time.monotonic() + 120
    while await asyncio.to_thread(warm_count, hands_id) < size:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not fill")
        await asyncio.sleep(0.2)


async def use(client: HandsClient, runs: int) -> None:
    for _ in range(runs):
        request = ExecuteRequest(
            f"bench-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex, Tool.BASH, {"command": "true"}, 30.0
        )
        result = await client.execute_collect(request)
        if not result.ok:
            raise RuntimeError(f"the call failed: {result}")


def worker_pid(hands_id: str) -> int:
    """The hands process with this id: the one whose environment names it (hands_worker keeps its
    Popen to itself)."""
    wanted = f"LOOPD_HANDS_ID={hands_id}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no process for hands worker {hands_id}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandboxes", type=int, default=4)
    args = parser.parse_args()
    mib = 2**20
    async with hands_worker(warm_pool=args.sandboxes) as (client, hands_id):
        await wait_full(hands_id, args.sandboxes)
        pid = worker_pid(hands_id)
        pool = containers(hands_id)
        warm = memory_of(pool)
        idle_rss = rss_bytes(pid)
        # Each run claims a warm sandbox (it keeps its labels), and the pool starts new ones: the
        # claimed ones are the first pool's containers, the warm ones those started since.
        await use(client, args.sandboxes)
        deadline = time.monotonic() + 120
        while len(containers(hands_id) - pool) < args.sandboxes:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm pool did not refill")
            await asyncio.sleep(0.2)
        used = memory_of(pool & containers(hands_id))
        warm_again = memory_of(containers(hands_id) - pool)
        busy_rss = rss_bytes(pid)
    print(f"machine: {machine()}")
    print("\n| sandboxes | n | median [MiB] | max [MiB] |\n|---|---|---|---|")
    rows = (
        ("warm, in the pool", warm),
        ("a run's, idle after one call", used),
        ("warm, started while the runs held theirs", warm_again),
    )
    for name, values in rows:
        print(f"| {name} | {len(values)} | {median(values) / mib:.2f} | {max(values) / mib:.2f} |")
    print(
        f"\nhands worker RSS: {idle_rss / mib:.1f} MiB with {args.sandboxes} warm sandboxes, "
        f"{busy_rss / mib:.1f} MiB with {args.sandboxes} runs' and {args.sandboxes} warm ones"
    )


if __name__ == "__main__":
    asyncio.run(main())
