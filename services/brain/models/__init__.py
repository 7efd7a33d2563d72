"""The model provider boundary: one request in, one response out.

Backends live beside this module (openai.py, anthropic.py, scripted.py); `build_provider` picks one
and imports it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from services.core.settings import Settings


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One turn of the conversation as the brain rebuilt it from the event log.

    role "tool" carries one tool result, answering `tool_call_id`.
    """

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False


@dataclass(frozen=True)
class ModelRequest:
    model: str
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ModelResponse:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end_turn"


class ModelProvider(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Call the model once. Raises ModelError (with `retryable`) on failure."""
        ...

    async def aclose(self) -> None: ...


def build_provider(
    model: str, settings: Settings, script: list[dict[str, Any]] | None = None
) -> ModelProvider:
    """Pick the backend from the model name's prefix: `scripted`, `openai/NAME`, `anthropic/NAME`."""
    provider, _, _name = model.partition("/")
    if provider == "scripted":
        from services.brain.models.scripted import ScriptedProvider

        return ScriptedProvider(script or [])
    if provider == "openai":
        from services.brain.models.openai import OpenAIProvider

        return OpenAIProvider(settings)
    if provider == "anthropic":
        from services.brain.models.anthropic import AnthropicProvider

        return AnthropicProvider(settings)
    from services.core.errors import InvalidRequest

    raise InvalidRequest(f"unknown model provider {provider!r} in {model!r}", code="unknown_model")


def model_name(model: str) -> str:
    """The provider-side name: `openai/gpt-4o-mini` -> `gpt-4o-mini`."""
    return model.partition("/")[2] or model
