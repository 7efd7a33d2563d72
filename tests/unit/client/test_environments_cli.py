"""`loopd environments` and `loopd secrets`: the requests they send and what they print; a secret's
value goes from stdin or a file into the request body, and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import loopd.cli_context
import pytest
from loopd import Client
from loopd.cli import app
from typer.testing import CliRunner

AT = "2026-03-01T00:00:00+00:00"
ENVIRONMENT = {
    "id": "build",
    "name": "builds",
    "version": 2,
    "latest_version": 2,
    "runtime": "runsc",
    "network": {"policy": "allowlist", "hosts": [{"pattern": "api.example.test", "ports": []}]},
    "secrets": [],
    "created_at": AT,
}


class Gateway:
    """Answers the environments and secrets calls and remembers each request."""

    def __init__(self) -> None:
        self.asked: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        path = request.url.path
        if path == "/v1/runs":
            return httpx.Response(201, json={"id": "run_1", "status": "queued"})
        if path.startswith("/v1/secrets"):
            secret = {"name": path.rsplit("/", 1)[-1], "created_at": AT, "updated_at": AT}
            if request.method == "GET":
                return httpx.Response(200, json={"data": [{**secret, "name": "api-token"}]})
            if request.method == "DELETE":
                return httpx.Response(200, json={"id": secret["name"], "deleted": True})
            return httpx.Response(200, json=secret)
        if path.endswith("/versions") and request.method == "GET":
            return httpx.Response(200, json={"data": [{"version": 2, "created_at": AT, **ENVIRONMENT}]})
        if path == "/v1/environments" and request.method == "GET":
            more = (
                "c2Vjb25k"
                if request.url.params.get("limit") == "1" and "cursor" not in request.url.params
                else None
            )
            return httpx.Response(200, json={"data": [ENVIRONMENT], "next_cursor": more})
        return httpx.Response(201 if request.method == "POST" else 200, json=ENVIRONMENT)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.asked]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Gateway:
    fake = Gateway()

    def make_client(url: str, *, api_key: str | None = None) -> Client:
        return Client(url, api_key=api_key, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(loopd.cli_context, "Client", make_client)
    return fake


def test_an_environment_is_created_from_a_spec_file_and_shown(gateway: Gateway, tmp_path: Path) -> None:
    spec = tmp_path / "builds.yaml"
    spec.write_text("runtime: runsc\nnetwork:\n  policy: allowlist\n  hosts: [{pattern: api.example.test}]\n")
    created = CliRunner().invoke(app, ["environments", "create", str(spec), "--id", "build"])
    assert created.exit_code == 0, created.output
    assert created.output == "build 2\n"
    listed = CliRunner().invoke(app, ["environments", "list"])
    shown = CliRunner().invoke(app, ["environments", "show", "build", "--version", "2"])
    versions = CliRunner().invoke(app, ["environments", "versions", "build"])
    assert "allowlist api.example.test" in listed.output and "runtime: runsc" in shown.output
    assert versions.exit_code == 0 and "runsc" in versions.output

    first, _, show, _ = gateway.asked
    assert (first.method, first.url.path) == ("POST", "/v1/environments")
    assert gateway.bodies()[0] == {
        "runtime": "runsc",
        "network": {"policy": "allowlist", "hosts": [{"pattern": "api.example.test"}]},
        "name": "builds",
        "id": "build",
    }
    assert show.url.path == "/v1/environments/build" and dict(show.url.params) == {"version": "2"}


def test_environments_are_listed_a_page_at_a_time(gateway: Gateway) -> None:
    first = CliRunner().invoke(app, ["environments", "list", "--archived", "--limit", "1"])
    assert first.exit_code == 0, first.output
    assert "build" in first.output
    assert "more: loopd environments list --archived --limit 1 --cursor c2Vjb25k" in first.output
    second = CliRunner().invoke(
        app, ["environments", "list", "--limit", "1", "--cursor", "c2Vjb25k", "--json"]
    )
    assert json.loads(second.output)["next_cursor"] is None and "more:" not in second.output
    asked = [dict(request.url.params) for request in gateway.asked]
    assert asked == [
        {"include_archived": "true", "limit": "1"},
        {"limit": "1", "cursor": "c2Vjb25k"},
    ]


def test_a_secret_is_read_from_stdin_or_a_file_and_never_printed(gateway: Gateway, tmp_path: Path) -> None:
    piped = CliRunner().invoke(app, ["secrets", "set", "api-token"], input="s3cr3t-value\n")
    assert piped.exit_code == 0 and piped.output == "api-token stored\n"
    path = tmp_path / "token"
    path.write_text("from-a-file")
    from_file = CliRunner().invoke(app, ["secrets", "set", "other", "--from-file", str(path)])
    assert from_file.exit_code == 0
    empty = CliRunner().invoke(app, ["secrets", "set", "empty"], input="")
    assert empty.exit_code == 2 and "empty_value" in empty.output
    listed = CliRunner().invoke(app, ["secrets", "list"])
    deleted = CliRunner().invoke(app, ["secrets", "delete", "api-token"])
    assert "api-token" in listed.output and deleted.output == "api-token deleted\n"

    assert gateway.bodies()[:2] == [{"value": "s3cr3t-value"}, {"value": "from-a-file"}]
    assert [r.method for r in gateway.asked] == ["PUT", "PUT", "GET", "DELETE"]
    for result in (piped, from_file, listed, deleted):
        assert "s3cr3t" not in result.output and "from-a-file" not in result.output


def test_a_run_names_its_environment(gateway: Gateway, tmp_path: Path) -> None:
    spec = tmp_path / "agent.yaml"
    spec.write_text("model: scripted\n")
    for given, sent in (("build", {"id": "build"}), ("build:3", {"id": "build", "version": 3})):
        started = CliRunner().invoke(app, ["run", "go", "--agent", str(spec), "--environment", given])
        assert started.exit_code == 0 and started.output == "run_1\n"
        assert gateway.bodies()[-1]["environment"] == sent
    refused = CliRunner().invoke(app, ["run", "go", "--agent", str(spec), "--environment", "build:x"])
    assert refused.exit_code == 2 and len(gateway.asked) == 2
