"""An in-memory stand-in for the gateway's v1 HTTP API, served through httpx.MockTransport.

It can drop event streams mid-way and replay events a client has already seen, which is what
the client's reconnect logic has to survive. It also answers the control calls (approvals, answers,
interrupts, budgets, client tool results, forks and diffs) the way the gateway does, refusing the
ones that do not match what the run waits for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

RUN_ID = "run_test"
FORK_ID = "run_fork"


def event(seq: int | None, type: str, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "type": type, "at": "2025-01-01T00:00:00+00:00", "data": data}


def sse_message(payload: dict[str, Any]) -> bytes:
    lines = [f"event: {payload['type']}", f"data: {json.dumps(payload)}"]
    if payload.get("seq") is not None:
        lines.insert(0, f"id: {payload['seq']}")
    return ("\n".join(lines) + "\n\n").encode()


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that can break off like a reset connection after its last chunk."""

    def __init__(self, chunks: list[bytes], *, drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.drop:
            raise httpx.ReadError("connection reset by peer")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.drop:
            raise httpx.ReadError("connection reset by peer")


@dataclass
class FakeGateway:
    events: list[dict[str, Any]]
    status: str = "completed"
    last_seq: int | None = None
    # Messages served on the Nth stream connection before it drops; later connections never drop.
    drop_after: list[int] = field(default_factory=list)
    # Already-delivered events re-sent at the start of every reconnect.
    replay_overlap: int = 0
    # Seqs the live stream leaves out, so the client has to notice the gap.
    hidden_from_stream: set[int] = field(default_factory=set)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    listed_sha256: dict[str, str] = field(default_factory=dict)
    extra_artifact_paths: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None
    # False accepts every control call, whatever the run waits for.
    strict: bool = True
    diff_result: dict[str, Any] = field(default_factory=lambda: {"diverges_at": None, "a": [], "b": []})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def stream_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/events/stream")]

    def bodies(self, method: str = "POST") -> list[tuple[str, Any]]:
        """(path, JSON body) of every request with `method`, in order."""
        return [
            (r.url.path, json.loads(r.content) if r.content else None)
            for r in self.requests
            if r.method == method
        ]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if (request.method, path) == ("POST", "/v1/runs"):
            return httpx.Response(201, json={"id": RUN_ID, "status": "queued"})
        if (request.method, path) == ("GET", "/v1/runs"):
            return httpx.Response(200, json={"data": [self.run()], "next_cursor": None})
        base = f"/v1/runs/{RUN_ID}"
        if not path.startswith(base):
            return _error(404, "run_not_found", f"no run at {path}")
        rest = path[len(base) :]
        if request.method == "POST" or rest.startswith("/diff/"):
            return self._control(rest, json.loads(request.content) if request.content else {})
        if rest == "":
            return httpx.Response(200, json=self.run())
        if rest == "/events":
            return self._list_events(request)
        if rest == "/events/stream":
            return self._stream(request)
        if rest == "/artifacts":
            return httpx.Response(200, json={"data": self._artifact_listing()})
        if rest.startswith("/artifacts/"):
            return self._artifact(unquote(rest[len("/artifacts/") :]))
        return _error(404, "not_found", "Not Found")

    def run(self) -> dict[str, Any]:
        seqs = [e["seq"] for e in self.events if e["seq"] is not None]
        last = self.last_seq if self.last_seq is not None else max(seqs, default=0)
        status = "waiting" if self.waiting_for else self.status
        return {
            "id": RUN_ID, "status": status, "last_seq": last, "step": 3, "metadata": {},
            "waiting_for": self.waiting_for,
        }  # fmt: skip

    def _control(self, rest: str, body: dict[str, Any]) -> httpx.Response:
        action, _, target = rest.strip("/").partition("/")
        if action == "diff":
            return httpx.Response(200, json=self.diff_result)
        if action == "fork":
            forked = {
                "id": FORK_ID,
                "status": "queued",
                "forked_from": {"run_id": RUN_ID, "seq": body["at_seq"]},
            }
            return httpx.Response(201, json=forked)
        if action == "interrupt":
            self.waiting_for = None if body.get("message") else {"type": "interrupt"}
            return self._accepted()
        if self.strict:
            refused = self._refusal(action, target, body)
            if refused is not None:
                return refused
        self.waiting_for = None
        return self._accepted()

    def _refusal(self, action: str, target: str, body: dict[str, Any]) -> httpx.Response | None:
        expected = {
            "approvals": "approval",
            "messages": "input",
            "budget": "budget",
            "tool_results": "tool_result",
        }
        kind = (self.waiting_for or {}).get("type")
        if action not in expected or (kind != expected[action] and action != "messages"):
            return _error(409, f"not_waiting_for_{expected.get(action, action)}", f"the run waits for {kind}")
        if kind == "input" and not _matches(body.get("content"), self.waiting_for or {}):
            return _error(422, "answer_invalid", "the answer must be an object with a `colour`")
        if target and target not in (self.waiting_for or {}).get("call_ids", [target]):
            return _error(404, "call_not_found", f"the run does not wait on call {target}")
        return None

    def _accepted(self) -> httpx.Response:
        return httpx.Response(
            202, json={**self.run(), "status": "waiting" if self.waiting_for else "running"}
        )

    def _after(self, after: int) -> list[dict[str, Any]]:
        """Events that came after seq `after`, including live-only ones sent since then."""
        position = next((i + 1 for i, e in enumerate(self.events) if e["seq"] == after), 0)
        return self.events[position:]

    def _list_events(self, request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", 0))
        limit = int(request.url.params.get("limit", 500))
        page = [e for e in self._after(after) if e["seq"] is not None][:limit]
        return httpx.Response(200, json={"data": page, "next_after": None})

    def _stream(self, request: httpx.Request) -> httpx.Response:
        connection = len(self.stream_requests) - 1
        resume = max(int(request.url.params.get("after", 0)), int(request.headers.get("last-event-id", 0)))
        start = max(resume - self.replay_overlap, 0) if connection else resume
        served = [e for e in self._after(start) if e["seq"] not in self.hidden_from_stream]
        if connection:
            # A reconnect replays from the log, where live-only deltas were never stored.
            served = [e for e in served if e["seq"] is not None]
        drop = connection < len(self.drop_after)
        if drop:
            served = served[: self.drop_after[connection]]
        chunks = [b": ping\n\n", *(sse_message(e) for e in served)]
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=Body(chunks, drop=drop))

    def _artifact_listing(self) -> list[dict[str, Any]]:
        listing = [
            {
                "path": p,
                "size": len(data),
                "sha256": self.listed_sha256.get(p, hashlib.sha256(data).hexdigest()),
            }
            for p, data in self.artifacts.items()
        ]
        listing += [{"path": p, "size": 1, "sha256": "0" * 64} for p in self.extra_artifact_paths]
        return listing

    def _artifact(self, path: str) -> httpx.Response:
        if path not in self.artifacts:
            return _error(404, "artifact_not_found", f"no artifact {path!r}")
        return httpx.Response(
            200, content=self.artifacts[path], headers={"content-type": "application/octet-stream"}
        )


def _matches(answer: Any, waiting_for: dict[str, Any]) -> bool:
    """A stand-in for the server's JSON schema check: object schemas need an object with `colour`."""
    schema = waiting_for.get("schema") or {}
    return schema.get("type") != "object" or (isinstance(answer, dict) and "colour" in answer)


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def completed_run_events() -> list[dict[str, Any]]:
    """A short finished run: created, a tool round trip, completed."""
    return [
        event(1, "run.created", input="count words", agent_id=None, agent_version=None),
        event(2, "run.status", status="running"),
        event(3, "model.response", text="Counting.", tool_calls=[{"id": "c1", "name": "bash", "input": {}}]),
        event(4, "tool.call", call_id="c1", name="bash", input={"command": "wc -w notes.txt"}),
        event(5, "tool.result", call_id="c1", ok=True, output="42 notes.txt\n", exit_code=0),
        event(6, "run.completed", result="There are 42 words."),
    ]
