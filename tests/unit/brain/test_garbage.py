"""The brain collects the artifact store's garbage in the background: a blob nothing references goes once
it is old, while the snapshot and the files a finished run's log names stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.waiting import eventually
from services.core.metrics import REGISTRY
from tests.unit.brain.loop import Loop, call, of_type, scripted


def blobs(root: Path) -> set[str]:
    return {path.name for path in root.glob("??/*") if not path.name.startswith(".")}


def age_all(root: Path) -> None:
    long_ago = time.time() - 30 * 24 * 3600
    for path in root.glob("??/*"):
        os.utime(path, (long_ago, long_ago))


async def test_the_brain_removes_old_blobs_nothing_references(database_url: str, tmp_path: Path) -> None:
    agent = scripted({"tool_calls": [call("bash", command="echo kept > kept.txt")]}, {"text": "done"})
    async with Loop(database_url, tmp_path, artifacts_gc_interval_seconds=0.1) as loop:
        root = loop.settings.artifacts_path
        run_id = await loop.start(agent)
        await loop.until(run_id, "completed")
        events = await loop.events(run_id)
        [result] = of_type(events, "tool.result")
        [artifact] = of_type(events, "artifact.created")
        orphan = (await loop.artifacts.put(b"the content of a snapshot that failed")).sha256
        removed = REGISTRY.get_sample_value("loopd_brain_collected_blobs_total") or 0.0
        age_all(root)

        async def collected() -> bool:
            return orphan not in blobs(root)

        await eventually(collected, timeout=10)

    assert {result["snapshot"], artifact["sha256"]} <= blobs(root)
    assert (REGISTRY.get_sample_value("loopd_brain_collected_blobs_total") or 0.0) >= removed + 1
