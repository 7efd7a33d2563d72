"""Anthropic Messages API provider: `POST {anthropic_base_url}/v1/messages`.

HTTP plumbing and error classification are shared with openai.py; this module only maps the wire shapes.
"""

from __future__ import annotations

import json
from typing import Any

from services.brain.models import Message, ModelRequest, ModelResponse, ToolCall, Usage, model_name
from services.brain.models.openai import RAW_ARGUMENTS_KEY, bad_response, new_client, post_json
from services.core.settings import Settings

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """Messages API with tool use; `x-api-key` is sent only when a key is configured."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.anthropic_base_url.rstrip("/") + "/v1/messages"
        self._key = settings.anthropic_api_key
        self._client = new_client(settings)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        headers = {"accept": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self._key and self._key.get_secret_value():
            headers["x-api-key"] = self._key.get_secret_value()
        data = await post_json(
            self._client,
            self._url,
            headers=headers,
            body=to_wire(request),
            provider="anthropic",
            secret=self._key,
        )
        return from_wire(data)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AnthropicProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def to_wire(request: ModelRequest) -> dict[str, Any]:
    """The Messages API request body for `request`."""
    body: dict[str, Any] = {
        "model": model_name(request.model),
        "max_tokens": request.max_tokens,
        "messages": wire_messages(request.messages),
    }
    if request.system:
        body["system"] = request.system
    if request.tools:
        body["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
            for tool in request.tools
        ]
    return body


def wire_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Map messages to wire turns, folding tool results (and text after them) into one user turn.

    The API wants every tool_use answered by a tool_result in the next user turn, with the tool_result
    blocks first; empty text blocks are rejected, so they are dropped.
    """
    wire: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        previous = wire[-1] if wire else None
        if previous and previous["role"] == role == "user" and _may_append(previous["content"], blocks):
            previous["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def _may_append(existing: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> bool:
    # A tool_result may not follow text inside one turn; text may follow anything.
    adding_results = any(block["type"] == "tool_result" for block in blocks)
    return not (adding_results and any(block["type"] != "tool_result" for block in existing))


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:
            block["content"] = message.content
        block["is_error"] = message.is_error
        return [block]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
        for call in message.tool_calls
    )
    return blocks


def from_wire(data: dict[str, Any]) -> ModelResponse:
    """Map a Messages API response body onto ModelResponse (thinking and other blocks are ignored)."""
    content = data.get("content")
    if not isinstance(content, list):
        raise bad_response("anthropic", "message without content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            raw = block.get("input")
            tool_input = raw if isinstance(raw, dict) else {RAW_ARGUMENTS_KEY: json.dumps(raw)}
            calls.append(
                ToolCall(id=str(block.get("id", "")), name=str(block.get("name", "")), input=tool_input)
            )
    stop_reason = data.get("stop_reason")
    if not isinstance(stop_reason, str):
        stop_reason = "tool_use" if calls else "end_turn"
    return ModelResponse(
        text="".join(texts), tool_calls=tuple(calls), usage=_usage(data.get("usage")), stop_reason=stop_reason
    )


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    # input_tokens excludes prompt-cache reads and writes; the brain budgets on the whole prompt.
    prompt = sum(
        int(raw.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(input_tokens=prompt, output_tokens=int(raw.get("output_tokens") or 0))
