"""The `loopd` command line against an in-memory gateway: output, exit codes and error lines."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopd.cli import app
from typer.testing import CliRunner

from tests.unit.client.fake_gateway import RUN_ID, FakeGateway, completed_run_events, event

Invoke = Callable[..., Any]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_follow_prints_each_event_once_and_the_result_then_exits_0(
    use_gateway: Callable[[FakeGateway], None],
) -> None:
    use_gateway(FakeGateway(completed_run_events(), drop_after=[3]))
    result = invoke("logs", RUN_ID, "--follow")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in lines if not line.startswith(" " * 10)] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert "bash wc -w notes.txt" in result.stdout
    assert "42 notes.txt" in result.stdout


@pytest.mark.parametrize(
    ("last", "exit_code", "message"),
    [
        (event(6, "run.completed", result="There are 42 words."), 0, "There are 42 words."),
        (
            event(6, "run.failed", error={"code": "max_steps", "message": "limit of 5"}),
            1,
            "max_steps: limit of 5",
        ),
        (event(6, "run.cancelled", reason="cancelled by user"), 1, "run cancelled: cancelled by user"),
    ],
)
def test_run_follow_exits_by_how_the_run_ended(
    use_gateway: Callable[[FakeGateway], None],
    tmp_path: Path,
    last: dict[str, Any],
    exit_code: int,
    message: str,
) -> None:
    gateway = FakeGateway([*completed_run_events()[:5], last])
    created = {"id": RUN_ID, "status": "queued"}
    spec = tmp_path / "agent.yaml"
    spec.write_text("model: scripted\n")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=created)
        return gateway.handle(request)

    gateway.transport = lambda: httpx.MockTransport(handler)  # type: ignore[method-assign]
    use_gateway(gateway)
    result = invoke("run", "count words", "--agent", str(spec), "--follow", "-m", "team=infra")
    assert result.exit_code == exit_code, result.output
    assert result.stdout.splitlines()[0] == RUN_ID
    assert message in (result.stdout if exit_code == 0 else result.stderr)


def test_api_errors_print_one_line_to_stderr_and_exit_2(use_gateway: Callable[[FakeGateway], None]) -> None:
    use_gateway(FakeGateway([]))
    result = invoke("show", "run_missing")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error run_not_found: no run at /v1/runs/run_missing"
    assert "Traceback" not in result.output


def test_an_unreachable_server_is_explained_not_traced() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = invoke("--url", f"http://127.0.0.1:{port}", "runs")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error connection_error: cannot connect to the loopd server at http://127.0.0.1:{port}"
    )
    assert "Traceback" not in result.output


def test_bad_metadata_is_refused_before_any_request(tmp_path: Path) -> None:
    spec = tmp_path / "agent.yaml"
    spec.write_text("model: scripted\n")
    result = invoke("--url", "http://127.0.0.1:9", "run", "x", "--agent", str(spec), "-m", "novalue")
    assert result.exit_code == 2
    assert result.stderr.startswith("error invalid_metadata:")


def test_run_needs_exactly_one_agent_source() -> None:
    assert invoke("run", "x").exit_code == 2


def test_download_writes_verified_files_and_refuses_unsafe_or_corrupt_ones(
    use_gateway: Callable[[FakeGateway], None], tmp_path: Path
) -> None:
    good = b"print('hi')\n"
    gateway = FakeGateway(
        [],
        artifacts={"src/app.py": good, "corrupt.txt": b"abc"},
        listed_sha256={"corrupt.txt": hashlib.sha256(b"xyz").hexdigest()},
        extra_artifact_paths=["../escape.txt", "/etc/owned"],
    )
    use_gateway(gateway)
    target = tmp_path / "out"
    result = invoke("artifacts", RUN_ID, "--download", str(target))
    assert result.exit_code == 2
    assert (target / "src" / "app.py").read_bytes() == good
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "out/src/app.py"
    ]
    assert result.stderr.count("error unsafe_path:") == 2
    assert "error checksum_mismatch:" in result.stderr
    downloaded = [r.url.path for r in gateway.requests if "/artifacts/" in r.url.path]
    assert downloaded == ["/v1/runs/run_test/artifacts/src/app.py", "/v1/runs/run_test/artifacts/corrupt.txt"]


def test_artifacts_without_download_lists_them(use_gateway: Callable[[FakeGateway], None]) -> None:
    use_gateway(FakeGateway([], artifacts={"report.md": b"# hi\n"}))
    result = invoke("artifacts", RUN_ID)
    assert result.exit_code == 0
    assert "report.md" in result.stdout and hashlib.sha256(b"# hi\n").hexdigest() in result.stdout


def test_model_text_that_looks_like_markup_is_printed_verbatim(
    use_gateway: Callable[[FakeGateway], None],
) -> None:
    gateway = FakeGateway([])
    gateway.run = lambda: {"id": RUN_ID, "status": "completed", "result": "[/bold] :smile: [red]x"}  # type: ignore[method-assign]
    use_gateway(gateway)
    result = invoke("show", RUN_ID)
    assert result.exit_code == 0, result.output
    assert "[/bold] :smile: [red]x" in result.stdout
