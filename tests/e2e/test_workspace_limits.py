"""A greedy workspace never wedges a run or fills the disk: writing past /workspace's size fails inside the
sandbox, and a sparse 3 GB file is refused as a tool error that costs the artifact store nothing, while
the run goes on to its end from the workspace as it was."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment
from tests.e2e.test_spine import follow
from tests.e2e.test_storable import bash, results, run_to_end

pytestmark = [
    pytest.mark.docker,
    pytest.mark.usefixtures("loop_disks"),
]
MiB = 1024**2


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def test_a_sparse_3g_file_is_a_tool_error_and_the_run_goes_on(deployment: Deployment) -> None:
    before = store_bytes(deployment.artifacts_dir)
    run, events = run_to_end(
        deployment,
        [
            bash("echo kept > kept.txt"),
            bash("truncate -s 3G big && echo made"),
            bash("ls; cat kept.txt"),
            {"text": "went on"},
        ],
    )

    assert run["status"] == "completed" and run["result"] == "went on", run
    kept, sparse, after = results(events)
    assert sparse["ok"] is False and sparse["error"] == "tool_error"
    assert "storage budget" in sparse["error_message"]
    assert sparse["snapshot"] == kept["snapshot"]
    assert after["output"] == "kept.txt\nkept\n"
    assert store_bytes(deployment.artifacts_dir) - before < 4 * MiB


def test_writing_past_the_workspace_size_fails_in_the_sandbox_and_the_run_goes_on(
    deployment: Deployment,
) -> None:
    script = [bash("dd if=/dev/zero of=fill bs=1M count=64; rm fill; echo freed"), {"text": "done"}]
    agent = {
        "name": f"greedy-{secrets.token_hex(3)}",
        "model": "scripted",
        "script": script,
        "limits": {"workspace_bytes": 32 * MiB},
    }
    with deployment.client() as api:
        created = api.post("/v1/runs", json={"agent": agent, "input": "go"})
        assert created.status_code == 201, created.text
        events = follow(deployment, created.json()["id"])
    [result] = results(events)

    assert "No space left on device" in result["output"]
    assert result["ok"] and result["output"].endswith("freed\n")
    assert events[-1]["type"] == "run.completed"
