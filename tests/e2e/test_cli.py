"""The `loopd` CLI against a real deployment: run the demo agent, follow it, download its artifacts;
make keys of each role, use and revoke them; create a tenant."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.docker

DEMO_AGENT = Path(__file__).parents[2] / "examples" / "agents" / "demo.yaml"


def loopd(
    deployment: Deployment, *args: str, timeout: float = 180, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`loopd ARGS` against the deployment, with its admin key unless `key` says otherwise."""
    env = {
        **os.environ,
        "LOOPD_URL": deployment.url,
        "LOOPD_API_KEY": key or deployment.admin_key,
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


def scripted_agent(tmp_path: Path) -> Path:
    """An agent that answers at once, without a tool call."""
    spec = tmp_path / "agent.yaml"
    spec.write_text("name: quick\nmodel: scripted\nscript:\n  - text: done\n")
    return spec


def test_member_and_viewer_keys_do_what_their_roles_allow_until_revoked(
    deployment: Deployment, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    member_made = loopd(deployment, "keys", "create", f"member-{tag}", "--role", "member")
    viewer_made = loopd(
        deployment, "keys", "create", f"viewer-{tag}", "--role", "viewer", "--expires-in", "1d"
    )
    assert member_made.returncode == viewer_made.returncode == 0, member_made.stderr + viewer_made.stderr
    member, viewer = member_made.stdout.strip(), viewer_made.stdout.strip()
    assert member.startswith("lk_") and viewer.startswith("lk_") and member != viewer
    assert "shown this once" in member_made.stderr

    started = loopd(deployment, "run", "count", "--agent", str(scripted_agent(tmp_path)), key=member)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    shown = loopd(deployment, "show", run_id, key=viewer)
    assert shown.returncode == 0 and run_id in shown.stdout
    refused = loopd(deployment, "cancel", run_id, key=viewer)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error forbidden: this needs a key with the member role")
    not_admin = loopd(deployment, "keys", "list", key=member)
    assert not_admin.returncode == 2 and not_admin.stderr.startswith("error forbidden:")

    listed = loopd(deployment, "keys", "list", "--json")
    by_name = {k["name"]: k for k in json.loads(listed.stdout)["data"]}
    assert by_name[f"viewer-{tag}"]["role"] == "viewer" and by_name[f"viewer-{tag}"]["expires_at"]
    assert member not in listed.stdout and viewer not in listed.stdout
    revoked = loopd(deployment, "keys", "revoke", by_name[f"member-{tag}"]["id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout

    gone = loopd(deployment, "runs", key=member)
    assert (gone.returncode, gone.stderr.strip()) == (2, "error api_key_revoked: the API key is revoked")
    assert loopd(deployment, "runs", key=viewer).returncode == 0

    audit = loopd(deployment, "audit", "--action", "key.revoked", "--json")
    entries = json.loads(audit.stdout)["data"]
    assert by_name[f"member-{tag}"]["id"] in {e["object_id"] for e in entries}
    assert member not in audit.stdout


def test_tenants_create_prints_the_new_admin_key_once_and_it_sees_only_its_tenant(
    deployment: Deployment, tmp_path: Path
) -> None:
    tenant = f"team-{secrets.token_hex(3)}"
    created = loopd(deployment, "tenants", "create", tenant, "--name", "Team", "--max-running-runs", "2")
    assert created.returncode == 0, created.stderr
    admin_key = created.stdout.strip()
    assert admin_key.startswith("lk_") and created.stdout.count(admin_key) == 1
    assert admin_key not in created.stderr and f"tenant {tenant} created" in created.stderr

    shown = loopd(deployment, "tenants", "show", tenant, "--json", key=admin_key)
    assert json.loads(shown.stdout)["quotas"]["max_running_runs"] == 2
    listed = loopd(deployment, "tenants", "list")
    assert tenant in listed.stdout and admin_key not in listed.stdout
    own_keys = loopd(deployment, "keys", "list", "--json", key=admin_key)
    assert [k["role"] for k in json.loads(own_keys.stdout)["data"]] == ["admin"]
    not_root = loopd(deployment, "tenants", "list", key=admin_key)
    assert not_root.returncode == 2 and not_root.stderr.startswith("error forbidden:")

    started = loopd(deployment, "run", "count", "--agent", str(scripted_agent(tmp_path)))
    run_id = started.stdout.strip()
    hidden = loopd(deployment, "show", run_id, key=admin_key)
    assert hidden.returncode == 2 and hidden.stderr.startswith("error run_not_found:")
