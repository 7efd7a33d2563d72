"""OpenAIProvider against the fake model server: what goes over the wire, and what comes back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from harness.model_server import FakeModelServer, bind
from services.brain.models import Message, ModelProvider, ModelRequest, ToolCall, ToolSpec, Usage
from services.brain.models.openai import RAW_ARGUMENTS_KEY, ModelCallError, OpenAIProvider
from services.core.errors import ModelError
from services.core.settings import Settings

KEY = "sk-test-0123456789abcdef"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def request(
    *messages: Message, system: str = "You are terse.", tools: tuple[ToolSpec, ...] = ()
) -> ModelRequest:
    return ModelRequest(
        model="openai/gpt-test", system=system, messages=messages, tools=tools, max_tokens=256
    )


def settings(base_url: str, key: str | None = KEY, timeout: float = 5.0) -> Settings:
    return Settings(
        openai_base_url=base_url,
        openai_api_key=SecretStr(key) if key else None,
        model_timeout_seconds=timeout,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


@pytest.fixture
def srv(server: FakeModelServer) -> FakeModelServer:
    server.reset()
    return server


@pytest.fixture
async def provider(srv: FakeModelServer) -> AsyncIterator[ModelProvider]:
    async with OpenAIProvider(settings(srv.openai_base_url)) as p:
        yield p


async def test_plain_text_answer(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"text": "Hello.", "usage": {"input_tokens": 21, "output_tokens": 2}})

    response = await provider.complete(request(Message(role="user", content="Say hello.")))

    assert response.text == "Hello."
    assert response.tool_calls == ()
    assert response.usage == Usage(input_tokens=21, output_tokens=2)
    assert response.stop_reason == "end_turn"
    [sent] = srv.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["max_tokens"] == 256
    assert "tools" not in sent.body


async def test_system_prompt_is_the_first_message(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="hi"), system="Be kind."))
    await provider.complete(request(Message(role="user", content="hi"), system=""))

    with_system, without_system = (r.body["messages"] for r in srv.requests)
    assert with_system == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]
    assert without_system == [{"role": "user", "content": "hi"}]


async def test_tools_are_sent_as_functions(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="weather?"), tools=(WEATHER,)))

    assert srv.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER.input_schema,
            },
        }
    ]


async def test_tool_call_round_trip(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push(
        {"text": "Checking.", "tool_calls": [{"name": "get_weather", "input": {"city": "Oslo"}}]},
        {"text": "It is 4°C in Oslo."},
    )
    user = Message(role="user", content="Weather in Oslo?")

    first = await provider.complete(request(user, tools=(WEATHER,)))
    [call] = first.tool_calls
    assert (call.name, call.input, first.stop_reason) == ("get_weather", {"city": "Oslo"}, "tool_use")
    assert call.id.startswith("call_")

    assistant = Message(role="assistant", content=first.text, tool_calls=first.tool_calls)
    result = Message(role="tool", content="4°C, clear", tool_call_id=call.id)
    final = await provider.complete(request(user, assistant, result, tools=(WEATHER,)))

    assert final.text == "It is 4°C in Oslo."
    assert final.tool_calls == ()
    sent = srv.requests[1].body["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": call.id, "content": "4°C, clear"}


async def test_parallel_tool_calls(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push(
        {
            "tool_calls": [
                {"name": "get_weather", "input": {"city": "Oslo"}},
                {"name": "get_weather", "input": {"city": "Lima"}},
            ]
        },
        {"text": "Oslo is colder."},
    )
    user = Message(role="user", content="Compare Oslo and Lima.")

    first = await provider.complete(request(user, tools=(WEATHER,)))
    assert [c.input["city"] for c in first.tool_calls] == ["Oslo", "Lima"]
    assert first.text == ""
    assert len({c.id for c in first.tool_calls}) == 2

    results = [
        Message(role="tool", content=f"{c.input['city']}: mild", tool_call_id=c.id) for c in first.tool_calls
    ]
    assistant = Message(role="assistant", tool_calls=first.tool_calls)
    final = await provider.complete(request(user, assistant, *results, tools=(WEATHER,)))

    assert final.text == "Oslo is colder."
    sent = srv.requests[1].body["messages"]
    assert sent[2]["content"] is None
    assert [m["tool_call_id"] for m in sent[3:]] == [c.id for c in first.tool_calls]


async def test_failed_tool_result_says_so_in_its_text(srv: FakeModelServer, provider: ModelProvider) -> None:
    call = ToolCall(id="call_a", name="get_weather", input={"city": "Atlantis"})
    await provider.complete(
        request(
            Message(role="user", content="Weather in Atlantis?"),
            Message(role="assistant", tool_calls=(call,)),
            Message(role="tool", content="unknown city", tool_call_id="call_a", is_error=True),
        )
    )

    assert srv.requests[0].body["messages"][-1]["content"] == "Error: unknown city"


async def test_malformed_tool_arguments_are_kept_raw(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"'}]})

    response = await provider.complete(request(Message(role="user", content="weather?"), tools=(WEATHER,)))

    assert response.tool_calls[0].input == {RAW_ARGUMENTS_KEY: '{"city": "Oslo"'}


async def test_bearer_key_is_sent_when_configured(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="hi")))
    async with OpenAIProvider(settings(srv.openai_base_url, key=None)) as keyless:
        await keyless.complete(request(Message(role="user", content="hi")))

    with_key, without_key = srv.requests
    assert with_key.headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in without_key.headers


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "model_rate_limited", True),
        (500, "model_unavailable", True),
        (503, "model_unavailable", True),
        (408, "model_unavailable", True),
        (400, "model_bad_request", False),
        (404, "model_bad_request", False),
        (401, "model_auth", False),
    ],
)
async def test_http_errors_are_classified(
    srv: FakeModelServer, provider: ModelProvider, status: int, code: str, retryable: bool
) -> None:
    srv.push({"status": status})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert str(status) in str(caught.value)


async def test_rate_limit_carries_retry_after(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"status": 429, "headers": {"retry-after": "7"}})

    with pytest.raises(ModelCallError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
async def test_retry_after_forms(
    srv: FakeModelServer, provider: ModelProvider, headers: dict[str, str], expected: float | None
) -> None:
    srv.push({"status": 503, "headers": headers})

    with pytest.raises(ModelCallError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert caught.value.retry_after == expected


async def test_unreadable_success_is_retryable(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"body": {"object": "chat.completion", "choices": []}})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == ("model_bad_response", True)


async def test_refusal_is_the_answer_text(srv: FakeModelServer, provider: ModelProvider) -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    srv.push({"body": {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}})

    response = await provider.complete(request(Message(role="user", content="hi")))

    assert (response.text, response.usage) == ("I can't help with that.", Usage())


async def test_a_base_url_without_scheme_is_not_retryable() -> None:
    async with OpenAIProvider(settings("127.0.0.1:1/v1")) as provider:
        with pytest.raises(ModelError) as caught:
            await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == ("model_misconfigured", False)


async def test_key_never_appears_in_errors(srv: FakeModelServer, provider: ModelProvider) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}}
    srv.push({"status": 401, "body": echo})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert caught.value.code == "model_auth"
    assert "Incorrect API key" in caught.value.message
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


async def test_connection_refused_is_retryable() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()

    async with OpenAIProvider(settings(f"http://127.0.0.1:{port}/v1")) as provider:
        with pytest.raises(ModelError) as caught:
            await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", True)
    assert KEY not in str(caught.value)


async def test_timeout_is_retryable(srv: FakeModelServer) -> None:
    srv.push({"text": "too late", "delay": 0.5})

    async with OpenAIProvider(settings(srv.openai_base_url, timeout=0.1)) as provider:
        with pytest.raises(ModelError) as caught:
            await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == ("model_timeout", True)


@pytest.fixture
def process_url(tmp_path: Path) -> Iterator[str]:
    """The fake as an OS process, the way end-to-end tests run it."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"by_turn": True, "responses": [{"text": "from a process"}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.model_server", "--port", "0", "--script", str(script)],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_against_a_standalone_server_process(process_url: str) -> None:
    async with OpenAIProvider(settings(f"{process_url}/v1")) as provider:
        first = await provider.complete(request(Message(role="user", content="hi")))
        again = await provider.complete(request(Message(role="user", content="hi")))
    async with httpx.AsyncClient() as client:
        log = (await client.get(f"{process_url}/_requests")).json()

    assert first.text == again.text == "from a process"
    assert [entry["path"] for entry in log] == ["/v1/chat/completions"] * 2
    assert log[0]["body"]["messages"][-1] == {"role": "user", "content": "hi"}
