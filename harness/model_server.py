"""A local model API that speaks both OpenAI Chat Completions and Anthropic Messages, from a script.

Tests queue replies, point a provider at the server, and read back every request it received. It runs
in a background thread (`with FakeModelServer() as srv:`) or as a process:
`python -m harness.model_server --port N --script file.json`, with its log at `GET /_requests`.

A reply is one JSON object; the same reply renders in whichever format the request used:
    {"text": "...", "tool_calls": [{"name": "...", "input": {...}, "id"?: "...", "arguments"?: "raw"}],
     "usage"?: {"input_tokens": n, "output_tokens": n}, "stop_reason"?: "end_turn|tool_use|max_tokens",
     "delay"?: seconds}
    {"status": 429, "headers"?: {"retry-after": "2"}, "body"?: {...}, "delay"?: seconds}
    {"body": {...}}  (any status: this exact JSON body instead of a rendered one)
"arguments" sends that exact string as OpenAI function arguments (for malformed-JSON tests).
By default replies are a queue, each used once; with `by_turn` the reply is picked by the number of
assistant turns in the request, so a repeated call gets the same answer. Past the end: text "done".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

FINAL_REPLY: dict[str, Any] = {"text": "done"}
_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length", "stop_sequence": "stop"}
_OPENAI_ERRORS = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = 0.0  # wall-clock seconds, to compare with the commit times in the event log
    replied_at: float | None = None  # when the reply was ready to send, after any scripted delay


class ScriptState:
    """Replies still to give and requests received; shared between the server thread and the test."""

    def __init__(self, replies: Iterable[dict[str, Any]] = (), *, by_turn: bool = False) -> None:
        self._lock = threading.Lock()
        self._replies = list(replies)
        self._next = 0
        self.by_turn = by_turn
        self._requests: list[RecordedRequest] = []

    def push(self, *replies: dict[str, Any]) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self, replies: Iterable[dict[str, Any]] = ()) -> None:
        with self._lock:
            self._replies, self._next, self._requests = list(replies), 0, []

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests = []

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def reply_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """The next reply, or with `by_turn` the one for this conversation's step."""
        with self._lock:
            if self.by_turn:
                messages = body.get("messages") or ()
                index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
            else:
                index, self._next = self._next, self._next + 1
            return self._replies[index] if index < len(self._replies) else FINAL_REPLY


def create_app(state: ScriptState) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await _serve(state, request, "openai")

    @app.post("/v1/messages")
    async def messages(request: Request) -> JSONResponse:
        return await _serve(state, request, "anthropic")

    @app.get("/_requests")
    async def requests() -> list[dict[str, Any]]:
        return [asdict(r) for r in state.requests]

    @app.delete("/_requests")
    async def clear_requests() -> dict[str, bool]:
        state.clear_requests()
        return {"ok": True}

    @app.post("/_responses")
    async def push(request: Request) -> dict[str, int]:
        replies = await request.json()
        state.push(*(replies if isinstance(replies, list) else [replies]))
        return {"pushed": len(replies) if isinstance(replies, list) else 1}

    @app.post("/_reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    @app.get("/_health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


async def _serve(state: ScriptState, request: Request, wire: str) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    recorded = RecordedRequest(request.url.path, dict(request.headers), body, time.time())
    state.record(recorded)
    # A request the real API would reject gets its 400 and leaves the script where it was.
    problem = _check_openai(body) if wire == "openai" else _check_anthropic(body, recorded.headers)
    if problem:
        return _error(wire, 400, {}, None, problem)
    reply = state.reply_for(body)
    if reply.get("delay"):
        await asyncio.sleep(float(reply["delay"]))
    response = _respond(wire, reply, body)
    recorded.replied_at = time.time()
    return response


def _respond(wire: str, reply: dict[str, Any], body: dict[str, Any]) -> JSONResponse:
    status, headers = int(reply.get("status", 200)), reply.get("headers", {})
    if status >= 400:
        return _error(wire, status, headers, reply.get("body"), "scripted failure")
    if "body" in reply:  # sent verbatim, for replies the renderers would never produce
        return JSONResponse(reply["body"], status_code=status, headers=headers)
    render = _render_openai if wire == "openai" else _render_anthropic
    return JSONResponse(render(reply, body), status_code=status, headers=headers)


def _estimate(value: Any) -> int:
    return len(json.dumps(value)) // 4


def _render_openai(reply: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": call.get("arguments", json.dumps(call.get("input", {}))),
            },
        }
        for call in reply.get("tool_calls", [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("text") or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = reply.get("usage") or {"input_tokens": _estimate(body), "output_tokens": _estimate(message)}
    stop = reply.get("stop_reason") or ("tool_use" if calls else "end_turn")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH.get(stop, stop)}
        ],
        "usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        },
        "system_fingerprint": "fp_fake",
    }


def _render_anthropic(reply: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply["text"]}] if reply.get("text") else []
    content.extend(
        {
            "type": "tool_use",
            "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
            "name": call["name"],
            "input": call.get("input", {}),
        }
        for call in reply.get("tool_calls", [])
    )
    usage = reply.get("usage") or {"input_tokens": _estimate(body), "output_tokens": _estimate(content)}
    has_calls = any(block["type"] == "tool_use" for block in content)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": reply.get("stop_reason") or ("tool_use" if has_calls else "end_turn"),
        "stop_sequence": None,
        "usage": usage,
    }


def _error(wire: str, status: int, headers: dict[str, str], body: Any, message: str) -> JSONResponse:
    if body is None and wire == "openai":
        kind = _OPENAI_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    elif body is None:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _check_openai(body: Any) -> str | None:  # noqa: C901 - one flat list of the API's own checks
    """The request rules the real API enforces that a mapping bug would break; None if the body is fine."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model: field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must be a non-empty array"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}]: must be an object"
        role = message.get("role")
        if role != "tool" and pending:
            return f"messages[{i}]: tool_calls {sorted(pending)} must be answered by tool messages first"
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return f"messages[{i}]: role 'tool' must answer a preceding message with 'tool_calls'"
            pending.discard(message["tool_call_id"])
        elif role == "system" and i != 0:
            return f"messages[{i}]: the system message is expected first"
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                if not isinstance(call.get("function", {}).get("arguments"), str):
                    return f"messages[{i}]: function.arguments must be a string"
                pending.add(call.get("id"))
    for tool in body.get("tools") or ():
        if tool.get("type") != "function" or "name" not in tool.get("function", {}):
            return "tools: each tool is {type: function, function: {name, description, parameters}}"
    return None


def _check_anthropic(body: Any, headers: dict[str, str]) -> str | None:
    if "anthropic-version" not in headers:
        return "anthropic-version: header is required"
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model: field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return "messages: must be a non-empty array of objects"
    if messages[0].get("role") != "user":
        return "messages: must be a non-empty array starting with a user message"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: expected user or assistant; system goes top-level"
        blocks = message["content"] if isinstance(message.get("content"), list) else []
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if set(results) != pending or results != [b.get("tool_use_id") for b in blocks[: len(results)]]:
            return f"messages.{i}: tool_result blocks for {sorted(pending)} must open the next user turn"
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return f"messages.{i}: text content blocks must be non-empty"
        pending = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
    if pending:
        return "messages: the last assistant tool_use blocks have no tool_result"
    for tool in body.get("tools") or ():
        if not {"name", "input_schema"} <= set(tool):
            return "tools: each tool is {name, description, input_schema}"
    return None


class FakeModelServer:
    """The fake on a free port of 127.0.0.1, in a background thread; use it as a context manager."""

    def __init__(self, replies: Iterable[dict[str, Any]] = (), *, by_turn: bool = False) -> None:
        self.state = ScriptState(replies, by_turn=by_turn)
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    def push(self, *replies: dict[str, Any]) -> None:
        self.state.push(*replies)

    def reset(self) -> None:
        self.state.reset()

    def start(self, sock: socket.socket | None = None) -> None:
        """Serve on a free port of 127.0.0.1, or on `sock`: a listening socket made elsewhere (in
        another network namespace, say)."""
        sock = sock or bind("127.0.0.1", 0)
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._server = _uvicorn(self.state)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake model server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server and self._thread:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeModelServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one, with no window for another process to take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _uvicorn(state: ScriptState) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(state), lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    return uvicorn.Server(config)


def load_script(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """A script file is a JSON list of replies, or {"responses": [...], "by_turn": bool}."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return data, False
    return list(data.get("responses", [])), bool(data.get("by_turn", False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.model_server", description="Fake model API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="JSON file with the replies")
    parser.add_argument("--by-turn", action="store_true", help="pick replies by assistant-turn count")
    args = parser.parse_args(argv)
    replies, by_turn = load_script(args.script) if args.script else ([], False)
    sock = bind(args.host, args.port)
    # The first stdout line tells a parent process where to connect when it asked for port 0.
    print(f"listening http://{args.host}:{sock.getsockname()[1]}", flush=True)
    _uvicorn(ScriptState(replies, by_turn=by_turn or args.by_turn)).run(sockets=[sock])


if __name__ == "__main__":
    main()
