# The SDK types each answer as a wide union of event and block kinds; the test checks the kind by value.
# mypy: disable-error-code="union-attr,index"
"""A team's Managed Agents code, unchanged but for its base_url, against a real loopd deployment: the
official `anthropic` SDK makes an environment and an agent, and a session asks to run bash under
always_ask, is approved, really runs the command in a Docker sandbox, calls a custom tool whose result
the test sends, and ends its turn. The model is the local server speaking the Anthropic Messages wire,
reached through loopd's Anthropic provider.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from harness.cluster import Cluster, running_cluster
from harness.model_server import FakeModelServer
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.docker

COMMAND = "echo made-by-bash > note.txt; cat note.txt; test -f /.dockerenv && echo in-a-container"


# By turn, so the reply depends only on the conversation: runs other tests leave in the shared
# database may be stepped by this cluster's brains too, and must not take this flow's replies.
REPLIES: list[dict[str, Any]] = [
    {"text": "Running it.", "tool_calls": [{"name": "bash", "input": {"command": COMMAND}}]},
    {"tool_calls": [{"name": "lookup", "input": {"word": "loopd"}}]},
    {"text": "All done."},
    {"text": "You are welcome."},
]


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelServer]:
    with FakeModelServer(REPLIES, by_turn=True) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    postgres: EmbeddedPostgres,
    redis: RedisServer,
    model: FakeModelServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("managed")
    with running_cluster(
        root,
        database_url=postgres.url,
        bus_url=redis.url,
        hands=1,
        LOOPD_ANTHROPIC_BASE_URL=model.anthropic_base_url,
        LOOPD_ANTHROPIC_API_KEY=f"sk-ant-test-{secrets.token_hex(8)}",
    ) as running:
        yield running


@pytest.fixture
def client(cluster: Cluster) -> Iterator[anthropic.Anthropic]:
    # The one line a team changes: where the API is, and a loopd key.
    with anthropic.Anthropic(base_url=f"{cluster.url}/anthropic", api_key=cluster.admin_key) as sdk:
        yield sdk


def text(event: Any) -> str:
    return "".join(block.text for block in event.content or [])


def until_idle(stream: Any, seen: list[Any]) -> Any:
    """Read the stream into `seen` up to the next session.status_idle, which it returns."""
    for event in stream:
        seen.append(event)
        if event.type == "session.status_idle":
            return event
        assert event.type != "session.error", event
    raise AssertionError(f"the stream ended before the session went idle: {[e.type for e in seen]}")


def test_a_team_flow_runs_unchanged_through_the_sdk(
    client: anthropic.Anthropic, model: FakeModelServer, cluster: Cluster
) -> None:
    environment = client.beta.environments.create(name=f"box-{secrets.token_hex(3)}")
    agent = client.beta.agents.create(
        name="helper",
        model="claude-sonnet-4-6",
        system="You run commands and look words up.",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
            },
            {
                "type": "custom",
                "name": "lookup",
                "description": "Look a word up in the team's glossary.",
                "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
            },
        ],
    )
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="flow")
    assert session.status == "idle"
    assert list(client.beta.sessions.events.list(session.id)) == []

    streamed: list[Any] = []
    # Previews are asked for, and none come: loopd's events arrive whole (the history equals the stream).
    with client.beta.sessions.events.stream(session.id, event_deltas=["agent.message"]) as stream:
        sent = client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "do it"}]}]
        )
        idle = until_idle(stream, streamed)
        assert idle.stop_reason.type == "requires_action"
        [bash_use] = [e for e in streamed if e.type == "agent.tool_use"]
        assert bash_use.name == "bash" and bash_use.input == {"command": COMMAND}
        assert bash_use.evaluated_permission == "ask"
        assert idle.stop_reason.event_ids == [bash_use.id]

        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": bash_use.id, "result": "allow"}],
        )
        idle = until_idle(stream, streamed)
        [ran] = [e for e in streamed if e.type == "agent.tool_result"]
        assert ran.tool_use_id == bash_use.id and not ran.is_error
        assert text(ran).split() == ["made-by-bash", "in-a-container"]
        lookups = [e for e in streamed if e.type == "agent.custom_tool_use"]
        assert len(lookups) == 1, [(e.type, e.model_dump().get("stop_reason")) for e in streamed]
        [lookup] = lookups
        assert lookup.name == "lookup" and lookup.input == {"word": "loopd"}
        assert idle.stop_reason.type == "requires_action" and idle.stop_reason.event_ids == [lookup.id]
        waiting_for_lookup = idle

        client.beta.sessions.events.send(
            session.id,
            events=[
                {
                    "type": "user.custom_tool_result",
                    "custom_tool_use_id": lookup.id,
                    "content": [{"type": "text", "text": "loopd: a platform for long-lived agents"}],
                }
            ],
        )
        idle = until_idle(stream, streamed)
        assert idle.stop_reason.type == "end_turn"

    kinds = [e.type for e in streamed]
    assert kinds[:2] == ["user.message", "session.status_running"] and streamed[0].id == sent.data[0].id
    assert {"span.model_request_start", "span.model_request_end", "agent.message"} <= set(kinds)
    assert [text(e) for e in streamed if e.type == "agent.message"] == ["Running it.", "All done."]
    # The model saw the command's output and the custom tool's result on the Messages wire.
    results = [
        block
        for request in model.requests
        if request.body["system"] == agent.system
        for message in request.body["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
        if block.get("type") == "tool_result"
    ]
    assert any("in-a-container" in str(r["content"]) for r in results)
    assert any("long-lived agents" in str(r["content"]) for r in results)
    assert {r.body["model"] for r in model.requests if r.body["system"] == agent.system} == {
        "claude-sonnet-4-6"
    }

    # The history, listed in small pages, is exactly what was streamed; newest first, it is reversed.
    listed = list(client.beta.sessions.events.list(session.id, limit=3))
    assert [e.model_dump() for e in listed] == [e.model_dump() for e in streamed]
    newest_first = list(client.beta.sessions.events.list(session.id, limit=4, order="desc"))
    assert [e.id for e in newest_first] == [e.id for e in reversed(streamed)]
    only_tools = list(client.beta.sessions.events.list(session.id, limit=1, types=["agent.tool_use"]))
    assert [e.id for e in only_tools] == [bash_use.id]
    done = client.beta.sessions.retrieve(session.id)
    assert done.status == "idle" and done.usage.output_tokens and done.usage.output_tokens > 0

    # A stream opened after the turn replays nothing: the first event it shows is the next message.
    with client.beta.sessions.events.stream(session.id) as stream:
        again = client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "thanks"}]}]
        )
        later: list[Any] = []
        assert until_idle(stream, later).stop_reason.type == "end_turn"
    assert later[0].id == again.data[0].id and text(later[0]) == "thanks"
    assert {e.id for e in later}.isdisjoint({e.id for e in streamed})

    # The same session through loopd's native API: its run, and a fork where it waited for the lookup.
    with cluster.client() as api:
        run = api.get(f"/v1/runs/{session.id}").json()
        assert run["status"] == "completed" and run["agent_id"] == agent.id
        at_seq = waiting_for_lookup.x_loopd["seq"]
        forked = api.post(f"/v1/runs/{session.id}/fork", json={"at_seq": at_seq})
        assert forked.status_code == 201, forked.text
    fork_id = forked.json()["id"]
    fork = client.beta.sessions.retrieve(fork_id)
    assert fork.environment_id == environment.id and fork.title == "flow"
    fork_events = list(client.beta.sessions.events.list(fork_id, limit=50))
    shared = [e for e in streamed if e.x_loopd["seq"] <= at_seq]
    assert [e.model_dump() for e in fork_events[: len(shared)]] == [e.model_dump() for e in shared]

    # The fork waits for the lookup again, as its parent did there.
    def fork_waits() -> bool:
        return client.beta.sessions.retrieve(fork_id).status == "idle"

    eventually_sync(fork_waits, timeout=60, interval=0.2)

    # Errors come back as the SDK's classes.
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": "sevt_1_9", "result": "allow"}],
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=environment.id, resources=[{"type": "file", "file_id": "f"}]
        )

    # Archive and delete.
    archived = client.beta.sessions.archive(session.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "more"}]}]
        )
    assert session.id not in [s.id for s in client.beta.sessions.list(agent_id=agent.id)]
    for finished in (session.id, fork_id):
        assert client.beta.sessions.delete(finished).type == "session_deleted"
        with pytest.raises(anthropic.NotFoundError):
            client.beta.sessions.retrieve(finished)
    assert client.beta.environments.delete(environment.id).type == "environment_deleted"
    assert client.beta.agents.archive(agent.id).archived_at is not None
