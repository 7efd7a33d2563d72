"""What the client puts on the wire for each call."""

from __future__ import annotations

import json
from typing import Any

import httpx
from loopd import Client


class Recorder:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(201, json=self.answer)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


RUN: dict[str, Any] = {
    "id": "run_1",
    "status": "queued",
    "usage": {"input_tokens": 0, "output_tokens": 0, "tool_calls": 0},
}


def client_with(recorder: Recorder, **options: object) -> Client:
    return Client("http://loopd.test/", transport=httpx.MockTransport(recorder), **options)  # type: ignore[arg-type]


def test_a_token_is_sent_as_a_bearer_header() -> None:
    recorder = Recorder(RUN)
    with client_with(recorder, token="s3cret") as client:
        client.get_run("run_1")
    assert recorder.last.headers["authorization"] == "Bearer s3cret"


def test_no_token_sends_no_authorization_header() -> None:
    recorder = Recorder(RUN)
    with client_with(recorder) as client:
        client.get_run("run_1")
    assert "authorization" not in recorder.last.headers


def test_an_inline_run_sends_the_spec_input_metadata_and_idempotency_key() -> None:
    recorder = Recorder(RUN)
    with client_with(recorder) as client:
        run = client.create_run(
            "count words", agent={"model": "scripted"}, metadata={"team": "infra"}, idempotency_key="k-1"
        )
    assert run.id == "run_1"
    assert (recorder.last.method, recorder.last.url.path) == ("POST", "/v1/runs")
    assert json.loads(recorder.last.content) == {
        "input": "count words",
        "metadata": {"team": "infra"},
        "agent": {"model": "scripted"},
    }
    assert recorder.last.headers["idempotency-key"] == "k-1"


def test_a_stored_agent_run_names_the_agent_and_version() -> None:
    recorder = Recorder(RUN)
    with client_with(recorder) as client:
        client.create_run("go", agent_id="coder", agent_version=2)
    body = json.loads(recorder.last.content)
    assert (body["agent_id"], body["agent_version"]) == ("coder", 2)
    assert "agent" not in body


def test_list_runs_sends_only_the_filters_given() -> None:
    recorder = Recorder({"data": [RUN], "next_cursor": None})
    with client_with(recorder) as client:
        page = client.list_runs(status="running")
    assert dict(recorder.last.url.params) == {"status": "running"}
    assert page.data[0].status == "queued"


def test_cancel_sends_a_reason_only_when_given() -> None:
    recorder = Recorder(RUN)
    with client_with(recorder) as client:
        client.cancel_run("run_1")
        assert recorder.last.content == b""
        client.cancel_run("run_1", reason="wrong task")
    assert json.loads(recorder.last.content) == {"reason": "wrong task"}
    assert recorder.last.url.path == "/v1/runs/run_1/cancel"


def test_updating_an_agent_never_sends_an_id_in_the_body() -> None:
    recorder = Recorder({"id": "coder", "version": 2})
    with client_with(recorder) as client:
        agent = client.update_agent("coder", {"id": "other", "model": "scripted"})
    assert (recorder.last.method, recorder.last.url.path) == ("PUT", "/v1/agents/coder")
    assert json.loads(recorder.last.content) == {"model": "scripted"}
    assert agent.version == 2


def test_unknown_fields_from_a_newer_server_are_kept() -> None:
    recorder = Recorder({**RUN, "priority": "high"})
    with client_with(recorder) as client:
        run = client.get_run("run_1")
    assert run.model_extra == {"priority": "high"}
