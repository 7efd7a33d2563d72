"""AnthropicProvider against the fake model server: what goes over the wire, and what comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from harness.model_server import FakeModelServer, bind
from services.brain.models import Message, ModelProvider, ModelRequest, ToolCall, ToolSpec, Usage
from services.brain.models.anthropic import AnthropicProvider
from services.brain.models.openai import ModelCallError
from services.core.errors import ModelError
from services.core.settings import Settings

KEY = "sk-ant-test-0123456789abcdef"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def request(
    *messages: Message, system: str = "You are terse.", tools: tuple[ToolSpec, ...] = ()
) -> ModelRequest:
    return ModelRequest(
        model="anthropic/test-model", system=system, messages=messages, tools=tools, max_tokens=256
    )


def settings(base_url: str, key: str | None = KEY, timeout: float = 5.0) -> Settings:
    return Settings(
        anthropic_base_url=base_url,
        anthropic_api_key=SecretStr(key) if key else None,
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
    async with AnthropicProvider(settings(srv.anthropic_base_url)) as p:
        yield p


async def test_plain_text_answer(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"text": "Hello.", "usage": {"input_tokens": 21, "output_tokens": 2}})

    response = await provider.complete(request(Message(role="user", content="Say hello.")))

    assert response.text == "Hello."
    assert response.tool_calls == ()
    assert response.usage == Usage(input_tokens=21, output_tokens=2)
    assert response.stop_reason == "end_turn"
    [sent] = srv.requests
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "test-model"
    assert sent.body["max_tokens"] == 256
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]
    assert "tools" not in sent.body


async def test_system_prompt_is_top_level(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="hi"), system="Be kind."))
    await provider.complete(request(Message(role="user", content="hi"), system=""))

    with_system, without_system = (r.body for r in srv.requests)
    assert with_system["system"] == "Be kind."
    assert [m["role"] for m in with_system["messages"]] == ["user"]
    assert "system" not in without_system


async def test_tools_carry_input_schema(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="weather?"), tools=(WEATHER,)))

    assert srv.requests[0].body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER.input_schema,
        }
    ]


async def test_headers_carry_key_and_version(srv: FakeModelServer, provider: ModelProvider) -> None:
    await provider.complete(request(Message(role="user", content="hi")))
    async with AnthropicProvider(settings(srv.anthropic_base_url, key=None)) as keyless:
        await keyless.complete(request(Message(role="user", content="hi")))

    with_key, without_key = srv.requests
    assert with_key.headers["x-api-key"] == KEY
    assert with_key.headers["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in without_key.headers
    assert "authorization" not in with_key.headers


async def test_tool_call_round_trip(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push(
        {"text": "Checking.", "tool_calls": [{"name": "get_weather", "input": {"city": "Oslo"}}]},
        {"text": "It is 4°C in Oslo."},
    )
    user = Message(role="user", content="Weather in Oslo?")

    first = await provider.complete(request(user, tools=(WEATHER,)))
    [call] = first.tool_calls
    assert (call.name, call.input, first.stop_reason) == ("get_weather", {"city": "Oslo"}, "tool_use")
    assert first.text == "Checking."
    assert call.id.startswith("toolu_")

    assistant = Message(role="assistant", content=first.text, tool_calls=first.tool_calls)
    result = Message(role="tool", content="4°C, clear", tool_call_id=call.id)
    final = await provider.complete(request(user, assistant, result, tools=(WEATHER,)))

    assert final.text == "It is 4°C in Oslo."
    assert final.stop_reason == "end_turn"
    sent = srv.requests[1].body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "4°C, clear", "is_error": False}
        ],
    }


async def test_parallel_tool_results_share_one_user_turn(
    srv: FakeModelServer, provider: ModelProvider
) -> None:
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
    oslo, lima = first.tool_calls
    assert (oslo.input, lima.input, first.text) == ({"city": "Oslo"}, {"city": "Lima"}, "")

    final = await provider.complete(
        request(
            user,
            Message(role="assistant", tool_calls=first.tool_calls),
            Message(role="tool", content="3°C", tool_call_id=oslo.id),
            Message(role="tool", content="no data", tool_call_id=lima.id, is_error=True),
            Message(role="user", content="Be brief."),
            tools=(WEATHER,),
        )
    )

    assert final.text == "Oslo is colder."
    sent = srv.requests[1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [m["type"] for m in sent[1]["content"]] == ["tool_use", "tool_use"]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": oslo.id, "content": "3°C", "is_error": False},
        {"type": "tool_result", "tool_use_id": lima.id, "content": "no data", "is_error": True},
        {"type": "text", "text": "Be brief."},
    ]


async def test_usage_counts_cached_prompt_tokens(srv: FakeModelServer, provider: ModelProvider) -> None:
    usage = {
        "input_tokens": 5,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 900,
        "output_tokens": 7,
    }
    srv.push({"text": "ok", "usage": usage})

    response = await provider.complete(request(Message(role="user", content="hi")))

    assert response.usage == Usage(input_tokens=1005, output_tokens=7)


async def test_stop_reason_passes_through(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"text": "Once upon a", "stop_reason": "max_tokens"})

    response = await provider.complete(request(Message(role="user", content="A long story.")))

    assert response.stop_reason == "max_tokens"


async def test_empty_texts_are_not_sent(srv: FakeModelServer, provider: ModelProvider) -> None:
    call = ToolCall(id="toolu_1", name="get_weather", input={"city": "Oslo"})

    await provider.complete(
        request(
            Message(role="user", content="weather?"),
            Message(role="assistant", content="", tool_calls=(call,)),
            Message(role="tool", content="", tool_call_id="toolu_1"),
        )
    )

    sent = srv.requests[0].body["messages"]
    assert sent[1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False}]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "model_rate_limited", True),
        (500, "model_unavailable", True),
        (529, "model_unavailable", True),
        (409, "model_unavailable", True),
        (400, "model_bad_request", False),
        (413, "model_bad_request", False),
        (403, "model_auth", False),
    ],
)
async def test_http_errors_are_classified(
    srv: FakeModelServer, provider: ModelProvider, status: int, code: str, retryable: bool
) -> None:
    srv.push({"status": status})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == (code, retryable)


async def test_rate_limit_carries_retry_after(srv: FakeModelServer, provider: ModelProvider) -> None:
    srv.push({"status": 429, "headers": {"retry-after": "2.5"}})

    with pytest.raises(ModelCallError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retry_after) == ("model_rate_limited", 2.5)


async def test_bad_request_surfaces_the_api_message(srv: FakeModelServer, provider: ModelProvider) -> None:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too large"}}
    srv.push({"status": 400, "body": body})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert not caught.value.retryable
    assert "max_tokens: too large" in caught.value.message


async def test_key_never_appears_in_errors(srv: FakeModelServer, provider: ModelProvider) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}}
    srv.push({"status": 401, "body": body})

    with pytest.raises(ModelError) as caught:
        await provider.complete(request(Message(role="user", content="hi")))

    assert caught.value.code == "model_auth"
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


async def test_connection_refused_is_retryable() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()

    async with AnthropicProvider(settings(f"http://127.0.0.1:{port}")) as provider:
        with pytest.raises(ModelError) as caught:
            await provider.complete(request(Message(role="user", content="hi")))

    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", True)
