"""What a workspace of many small files costs: its first snapshot, a rescan that finds it unchanged, and
its restore on a fresh run, against `tar` of the same tree out of and into a sandbox, in one run.

    .venv/bin/python -m bench.workspace [--files 100000] [--trials 2]

Starts its own hands worker (`python -m services.hands`, in-process bus, loopback, a scratch artifact
store) and stops it. Each trial makes the files in 100 folders (each file a line of text) with one
bash call (each trial's contents its own), and times through the worker as the brain calls it:
- *first snapshot*: that call's time minus the files' creation as the sandbox timed it;
- *rescan*: a `true` on the same run (the sandbox rehashes nothing, the worker copies nothing);
- *restore*: a `read_file` of one file on another run, from that snapshot (the run's sandbox was
  started by a first call: no figure holds a sandbox's start).
The baselines go through `docker exec` as the sandbox user: `tar -c` of /workspace into a host file,
and `tar -x` of that file into the empty /workspace of another run's sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench._support import machine, table
from bench.tool_call import hands_worker
from services.core.settings import Settings
from services.core.tools import Tool
from services.hands.contract.client import ExecuteRequest, ExecuteResult, HandsClient

MAKE = """python3 - <<'EOF'
import os, time
started = time.monotonic()
for d in range(100):
    os.mkdir(f"d{{d:02}}")
for i in range({files}):
    with open(f"d{{i % 100:02}}/f{{i:06}}.txt", "w") as f:
        f.write(f"file {{i}} of trial {trial}\\n")
print(time.monotonic() - started)
EOF"""
TIMEOUT = 3600.0


@dataclass
class Trial:
    make: float
    snapshot: float
    rescan: float
    restore: float
    tar_out: float
    tar_in: float
    tar_bytes: int


async def call(
    client: HandsClient, run_id: str, tool: str, args: dict[str, Any], base: str | None
) -> tuple[ExecuteResult, float]:
    request = ExecuteRequest(run_id, uuid.uuid4().hex, tool, args, TIMEOUT, base)
    started = time.perf_counter()
    result = await client.execute_collect(request)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"{tool} failed: {result.output[-2000:]}")
    return result, elapsed


def docker_tar(args: list[str], *, stdin: Path | None = None, stdout: Path | None = None) -> float:
    """Run tar in a sandbox as its user, through `docker exec`; the seconds it took."""
    with contextlib.ExitStack() as files:
        source = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        sink = files.enter_context(stdout.open("wb")) if stdout else subprocess.DEVNULL
        command = ["docker", "exec", "-i", "-u", Settings().sandbox_user, *args]
        started = time.perf_counter()
        subprocess.run(command, stdin=source, stdout=sink, check=True)
        return time.perf_counter() - started


async def trial(client: HandsClient, files: int, scratch: Path) -> Trial:
    # Each run's sandbox is started by a first call, so no figure holds a sandbox's start.
    run_id, fresh = f"bench-{uuid.uuid4().hex[:10]}", f"bench-{uuid.uuid4().hex[:10]}"
    for started in (run_id, fresh):
        await call(client, started, Tool.BASH, {"command": "true"}, None)
    # Contents differ between trials: each first snapshot writes every blob anew.
    make_them = {"command": MAKE.format(files=files, trial=run_id)}
    made, total = await call(client, run_id, Tool.BASH, make_them, None)
    make = float(made.output.strip())
    _, rescan = await call(client, run_id, Tool.BASH, {"command": "true"}, made.snapshot_after)
    read = {"path": "d07/f000007.txt"}
    restored, restore = await call(client, fresh, Tool.READ_FILE, read, made.snapshot_after)
    if restored.output != f"file 7 of trial {run_id}\n":
        raise RuntimeError(f"the restored workspace is wrong: {restored.output!r}")
    archive = scratch / f"{run_id}.tar"
    tar_out = await asyncio.to_thread(
        docker_tar, [made.sandbox_id, "tar", "-cf", "-", "-C", "/workspace", "."], stdout=archive
    )
    empty, _ = await call(client, f"bench-{uuid.uuid4().hex[:10]}", Tool.BASH, {"command": "true"}, None)
    tar_in = await asyncio.to_thread(
        docker_tar, [empty.sandbox_id, "tar", "-xf", "-", "-C", "/workspace"], stdin=archive
    )
    size = archive.stat().st_size
    archive.unlink()
    return Trial(make, total - make, rescan, restore, tar_out, tar_in, size)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    trials = []
    with TemporaryDirectory(prefix="loopd-bench-") as scratch:
        async with hands_worker(warm_pool=0, tool_timeout_seconds=str(TIMEOUT)) as (client, _):
            for _ in range(args.trials):
                trials.append(await trial(client, args.files, Path(scratch)))

    def med(name: str) -> float:
        return float(statistics.median(getattr(t, name) for t in trials))

    rows = [
        ("make the files (in the sandbox)", med("make"), ""),
        ("first snapshot", med("snapshot"), med("snapshot") / med("tar_out")),
        ("rescan, unchanged", med("rescan"), med("rescan") / med("tar_out")),
        ("restore on a fresh run", med("restore"), med("restore") / med("tar_in")),
        ("docker exec tar -c /workspace > file", med("tar_out"), 1.0),
        ("docker exec -i tar -x < file (empty /workspace)", med("tar_in"), 1.0),
    ]
    print(
        table(
            f"{args.files} files in 100 folders, {len(trials)} trials (medians); the archive is "
            f"{med('tar_bytes') / 2**20:.1f} MiB",
            ["step", "seconds", "seconds / its tar baseline"],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
