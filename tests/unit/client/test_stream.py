"""Following a run's event stream: every persisted event exactly once, in order, across drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from httpx_sse import ServerSentEvent
from loopd import AsyncClient, Client, LoopdAPIError, LoopdConnectionError, ProtocolError, ReconnectPolicy
from loopd.models import Event, Run
from loopd.stream import Backoff, StreamCursor, already_ended, decode_message, is_latest_end

from tests.unit.client.fake_gateway import RUN_ID, FakeGateway, completed_run_events, event

NO_WAIT = ReconnectPolicy(initial_delay=0, max_delay=0, max_attempts=3)


def client_for(gateway: FakeGateway) -> Client:
    return Client("http://loopd.test", transport=gateway.transport(), reconnect=NO_WAIT)


def seqs(events: list[Event]) -> list[int | None]:
    return [e.seq for e in events]


def test_a_finished_run_streams_to_its_end_event_and_stops() -> None:
    gateway = FakeGateway(completed_run_events())
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID))
    assert seqs(received) == [1, 2, 3, 4, 5, 6]
    assert received[-1].type == "run.completed"
    assert len(gateway.stream_requests) == 1


def test_a_dropped_stream_resumes_after_the_last_seq_without_repeating_one() -> None:
    # The second connection re-sends seq 3 before 4 and 5, then drops too.
    gateway = FakeGateway(completed_run_events(), drop_after=[3, 3], replay_overlap=1)
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID))
    assert seqs(received) == [1, 2, 3, 4, 5, 6]
    resumed = gateway.stream_requests[1]
    assert resumed.headers["last-event-id"] == "3"
    assert resumed.url.params["after"] == "3"
    assert gateway.stream_requests[2].headers["last-event-id"] == "5"


def test_the_first_connection_starts_after_the_requested_seq() -> None:
    gateway = FakeGateway(completed_run_events())
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID, after=4))
    assert seqs(received) == [5, 6]
    assert gateway.stream_requests[0].url.params["after"] == "4"


def test_live_only_output_passes_through_without_moving_the_resume_point() -> None:
    events = completed_run_events()
    events.insert(4, event(None, "tool.output", call_id="c1", stream="stdout", data="42 notes.txt\n"))
    gateway = FakeGateway(events, drop_after=[5])
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID))
    assert [(e.seq, e.type) for e in received][3:6] == [
        (4, "tool.call"),
        (None, "tool.output"),
        (5, "tool.result"),
    ]
    assert gateway.stream_requests[1].headers["last-event-id"] == "4"
    assert seqs(received).count(None) == 1


def test_a_gap_in_the_stream_is_filled_from_the_event_log() -> None:
    gateway = FakeGateway(completed_run_events(), hidden_from_stream={3, 4})
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID))
    assert seqs(received) == [1, 2, 3, 4, 5, 6]


def test_an_end_event_followed_by_a_new_message_does_not_end_the_stream() -> None:
    events = completed_run_events()
    events += [
        event(7, "user.message", content="and the lines?"),
        event(8, "run.status", status="queued"),
        event(9, "run.completed", result="3 lines."),
    ]
    gateway = FakeGateway(events)
    with client_for(gateway) as client:
        received = list(client.stream_events(RUN_ID))
    assert received[-1].seq == 9
    assert received[-1].data["result"] == "3 lines."


def test_a_run_that_already_ended_before_after_yields_nothing_and_opens_no_stream() -> None:
    gateway = FakeGateway(completed_run_events())
    with client_for(gateway) as client:
        assert list(client.stream_events(RUN_ID, after=6)) == []
    assert gateway.stream_requests == []


def test_an_unknown_run_is_an_api_error_at_once() -> None:
    gateway = FakeGateway(completed_run_events())
    with client_for(gateway) as client, pytest.raises(LoopdAPIError) as caught:
        list(client.stream_events("run_missing"))
    assert caught.value.code == "run_not_found"
    assert caught.value.status_code == 404


def test_following_gives_up_after_the_policy_s_attempts_without_progress() -> None:
    gateway = FakeGateway(completed_run_events(), status="running", last_seq=6)
    refused = {"count": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events/stream"):
            refused["count"] += 1
            raise httpx.ConnectError("connection refused")
        return gateway.handle(request)

    client = Client("http://loopd.test", transport=httpx.MockTransport(handler), reconnect=NO_WAIT)
    with client, pytest.raises(LoopdConnectionError):
        list(client.stream_events(RUN_ID))
    assert refused["count"] == NO_WAIT.max_attempts


async def test_the_async_client_resumes_the_same_way() -> None:
    gateway = FakeGateway(completed_run_events(), drop_after=[2, 3], replay_overlap=1)
    async with AsyncClient("http://loopd.test", transport=gateway.transport(), reconnect=NO_WAIT) as client:
        received = [e async for e in client.stream_events(RUN_ID)]
    assert seqs(received) == [1, 2, 3, 4, 5, 6]
    assert [r.headers.get("last-event-id") for r in gateway.stream_requests] == [None, "2", "4"]


def test_a_live_only_message_does_not_inherit_the_previous_sse_id() -> None:
    data = '{"seq": null, "type": "tool.output", "data": {"stream": "stdout", "data": "x"}}'
    decoded = decode_message(ServerSentEvent(event="tool.output", data=data, id="7"))
    assert decoded is not None
    assert (decoded.seq, decoded.type) == (None, "tool.output")


def test_a_message_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_message(ServerSentEvent(event="run.status", data="<html>", id="1"))


def test_the_cursor_skips_seen_seqs_and_spots_gaps() -> None:
    cursor = StreamCursor(after=3)
    seen, next_one, skipped = Event(seq=3, type="x"), Event(seq=4, type="x"), Event(seq=6, type="x")
    assert not cursor.is_new(seen)
    assert cursor.is_new(next_one) and not cursor.missing_before(next_one)
    assert cursor.missing_before(skipped)
    cursor.advance(Event(seq=None, type="tool.output"))
    assert cursor.last_seq == 3


def test_backoff_grows_to_its_ceiling_and_resets_once_connected() -> None:
    policy = ReconnectPolicy(initial_delay=1, max_delay=4, max_attempts=10)
    assert [policy.delay(n) <= ceiling for n, ceiling in [(1, 1), (2, 2), (3, 4), (8, 4)]] == [True] * 4
    backoff = Backoff(policy)
    retryable = LoopdConnectionError("down")
    backoff.next_delay(retryable)
    backoff.next_delay(retryable)
    backoff.connected()
    assert backoff.failures == 0


def test_backoff_re_raises_errors_that_retrying_cannot_fix() -> None:
    with pytest.raises(LoopdAPIError):
        Backoff(ReconnectPolicy()).next_delay(LoopdAPIError(404, "run_not_found", "no such run"))


def test_end_and_already_ended_compare_the_run_s_last_seq() -> None:
    finished = Run(id="r", status="completed", last_seq=6)
    assert is_latest_end(finished, Event(seq=6, type="run.completed"))
    assert not is_latest_end(finished, Event(seq=4, type="run.completed"))
    assert not is_latest_end(Run(id="r", status="running", last_seq=6), Event(seq=6, type="run.completed"))
    assert already_ended(6, finished) and not already_ended(5, finished)


def test_the_async_client_downloads_and_verifies_artifacts(tmp_path: Path) -> None:
    gateway = FakeGateway([], artifacts={"pkg/mod.py": b"x = 1\n"})

    async def download() -> Path:
        async with AsyncClient("http://loopd.test", transport=gateway.transport()) as client:
            listed = await client.list_artifacts(RUN_ID)
            return await client.download_artifact(RUN_ID, listed[0], tmp_path)

    saved = asyncio.run(download())
    assert saved == tmp_path.resolve() / "pkg" / "mod.py"
    assert saved.read_bytes() == b"x = 1\n"
