"""The local stack runs every role in one process: its gateway's /metrics holds each loopd metric
once, moved by the brain and the hands as well as by the gateway."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.scrape import total
from harness.servers import server_root
from harness.waiting import eventually
from services.core.settings import Settings
from services.local.postgres import free_port
from services.local.stack import LocalStack

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

AGENT = {
    "name": "local-metrics",
    "model": "scripted",
    "script": [
        {"tool_calls": [{"name": "write_file", "input": {"path": "a.txt", "content": "one process\n"}}]},
        {"text": "done"},
    ],
}


@pytest.fixture
def data_root() -> Iterator[Path]:
    with server_root("loopd-local-metrics-") as root:
        yield root


@pytest.fixture
async def stack(data_root: Path) -> AsyncIterator[LocalStack]:
    settings = Settings(
        data_dir=data_root,
        port=free_port(),
        # Its own id: the stack removes sandboxes an earlier stack of the same id left behind.
        hands_id=f"test-local-{secrets.token_hex(4)}",
        hands_warm_pool=0,
    )
    async with LocalStack(settings) as started:
        yield started


async def test_one_process_serves_every_role_metrics_once(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, headers=stack.headers) as api:
        created = await api.post("/v1/runs", json={"agent": AGENT, "input": "go"})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        async def completed() -> bool:
            status = (await api.get(f"/v1/runs/{run_id}")).json()["status"]
            assert status not in ("failed", "cancelled"), status
            return bool(status == "completed")

        await eventually(completed, timeout=120, interval=0.2)
        page = (await api.get("/metrics")).text

    names = [family.name for family in text_string_to_metric_families(page)]
    assert len(names) == len(set(names))
    assert total([page], "loopd_http_requests_total", method="POST", route="/v1/runs", status="201") >= 1
    assert total([page], "loopd_brain_step_commit_seconds_count") > 0
    assert total([page], "loopd_brain_tool_call_seconds_count", tool="write_file", outcome="ok") >= 1
    assert total([page], "loopd_hands_tool_call_seconds_count", tool="write_file", outcome="ok") >= 1
    assert total([page], "loopd_hands_sandbox_acquire_seconds_count", start="cold") >= 1
    assert total([page], "loopd_hands_snapshot_bytes_total") > 0
    hands_id = stack.settings.hands_id or ""
    assert total([page], "loopd_hands_slots_total", hands_id=hands_id) == stack.settings.hands_slots
