"""The `loopd` CLI against a real deployment: run the demo agent, follow it, download its artifacts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.docker

DEMO_AGENT = Path(__file__).parents[2] / "examples" / "agents" / "demo.yaml"


def loopd(deployment: Deployment, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOOPD_URL": deployment.url,
        "LOOPD_API_KEY": deployment.admin_key,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "loopd"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_the_demo_agent_runs_from_the_cli_and_artifacts_download(
    deployment: Deployment, tmp_path: Path
) -> None:
    followed = loopd(deployment, "run", "build textstats", "--agent", str(DEMO_AGENT), "--follow")
    assert followed.returncode == 0, followed.stdout + followed.stderr + deployment.processes.logs()
    run_id = followed.stdout.splitlines()[0].strip()
    assert run_id.startswith("run_")
    for event_type in ("model.response", "tool.call", "tool.result", "run.completed"):
        assert event_type in followed.stdout

    listed = loopd(deployment, "runs")
    assert run_id in listed.stdout
    shown = loopd(deployment, "show", run_id)
    assert shown.returncode == 0 and "completed" in shown.stdout

    downloaded = loopd(deployment, "artifacts", run_id, "--download", str(tmp_path / "out"))
    assert downloaded.returncode == 0, downloaded.stderr
    with httpx.Client(base_url=deployment.url, headers=deployment.headers) as api:
        artifacts = api.get(f"/v1/runs/{run_id}/artifacts").json()["data"]
    assert {a["path"] for a in artifacts} >= {"textstats.py", "test_textstats.py"}
    for artifact in artifacts:
        local = tmp_path / "out" / artifact["path"]
        assert hashlib.sha256(local.read_bytes()).hexdigest() == artifact["sha256"]


def test_cli_errors_are_clear_and_without_tracebacks(deployment: Deployment) -> None:
    missing = loopd(deployment, "show", "run_does_not_exist")
    assert missing.returncode == 2
    assert "run_not_found" in missing.stderr and "Traceback" not in missing.stderr
