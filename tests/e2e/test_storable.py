"""Output PostgreSQL cannot hold as text never wedges a run: binary tool output and file contents reach
the model escaped and stay exact in the artifact store, file names that are not UTF-8 are listed
escaped and download, and a commit the database refuses ends the run with a clear event."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import quote

import pytest

from services.core.text import unescape_name
from tests.e2e.conftest import Deployment
from tests.e2e.test_spine import follow

pytestmark = pytest.mark.docker


def bash(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "bash", "input": {"command": command}}]}


def run_to_end(deployment: Deployment, script: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    agent = {"name": f"storable-{secrets.token_hex(3)}", "model": "scripted", "script": script}
    with deployment.client() as api:
        created = api.post("/v1/runs", json={"agent": agent, "input": "go"})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        events = follow(deployment, run_id)
        run = api.get(f"/v1/runs/{run_id}").json()
        stored = api.get(f"/v1/runs/{run_id}/events").json()["data"]
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1)) == [e["seq"] for e in events]
    return run, stored


def results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "tool.result"]


def blob(deployment: Deployment, sha256: str) -> bytes:
    return (deployment.artifacts_dir / sha256[:2] / sha256).read_bytes()


def test_binary_output_and_binary_files_reach_the_model_and_stay_exact(deployment: Deployment) -> None:
    run, events = run_to_end(
        deployment,
        [
            bash(r"printf 'a\0b\377'"),
            bash(r"head -c 5000 /dev/urandom > blob.bin; printf '\0' >> blob.bin; sha256sum blob.bin"),
            {"tool_calls": [{"name": "read_file", "input": {"path": "blob.bin"}}]},
            bash("echo still serving"),
            {"text": "read it all"},
        ],
    )

    assert run["status"] == "completed", run
    printed, _, read, after = results(events)
    assert printed["ok"] and printed["binary"] and printed["output"] == "a\\x00b\\xff"
    assert printed["output_ref"] == {"sha256": hashlib.sha256(b"a\x00b\xff").hexdigest(), "size": 4}
    assert blob(deployment, printed["output_ref"]["sha256"]) == b"a\x00b\xff"
    assert read["ok"] and read["binary"] and "\\x00" in read["output"]
    artifacts = {a["path"]: a for a in _artifacts(deployment, run["id"])}
    assert read["output_ref"]["sha256"] == artifacts["blob.bin"]["sha256"]
    assert len(blob(deployment, read["output_ref"]["sha256"])) == 5001
    assert after["output"] == "still serving\n" and "binary" not in after
    responses = [e for e in events if e["type"] == "model.response"]
    assert len(responses) == 5 and responses[-1]["data"]["text"] == "read it all"


def test_file_names_that_are_not_utf8_are_listed_escaped_and_download(deployment: Deployment) -> None:
    run, _ = run_to_end(
        deployment,
        [
            bash(
                r"printf ff > $'\xff'; printf nl > $'new\nline'; printf bs > 'back\slash';"
                r" mkdir -p $'dir\xfe'; printf deep > $'dir\xfe/caf\xc3\xa9'"
            ),
            {"tool_calls": [{"name": "list_files", "input": {"path": "."}}]},
            {"text": "named them"},
        ],
    )

    assert run["status"] == "completed", run
    listed = {a["path"]: a for a in _artifacts(deployment, run["id"])}
    expected = {b"\xff": b"ff", b"new\nline": b"nl", b"back\\slash": b"bs", b"dir\xfe/caf\xc3\xa9": b"deep"}
    assert {unescape_name(path): None for path in listed} == dict.fromkeys(expected)
    with deployment.client() as api:
        for path in listed:
            downloaded = api.get(f"/v1/runs/{run['id']}/artifacts/{quote(path, safe='/')}")
            assert downloaded.status_code == 200, (path, downloaded.text)
            assert downloaded.content == expected[unescape_name(path)]


def test_a_commit_the_database_refuses_fails_the_run_with_a_clear_event(deployment: Deployment) -> None:
    most = 2**63 - 1  # the most a bigint counter holds: one more token cannot be stored
    run, events = run_to_end(
        deployment,
        [
            {**bash("echo first"), "usage": {"input_tokens": most, "output_tokens": 0}},
            {"text": "one too many", "usage": {"input_tokens": 1, "output_tokens": 0}},
        ],
    )

    assert run["status"] == "failed"
    assert run["error"]["code"] == "unstorable" and "out of range" in run["error"]["message"]
    assert events[-1]["type"] == "run.failed"
    assert [r["output"] for r in results(events)] == ["first\n"]


def _artifacts(deployment: Deployment, run_id: str) -> list[dict[str, Any]]:
    with deployment.client() as api:
        listed = api.get(f"/v1/runs/{run_id}/artifacts")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])
