"""OpenAI-compatible Chat Completions provider (OpenAI itself, vLLM, Ollama, llama.cpp server, ...).

It also holds the HTTP plumbing that anthropic.py shares: one pooled client per provider, one POST per
call, and the mapping of every failure onto ModelCallError. The provider never retries; the brain does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import uuid4

import httpx
from pydantic import SecretStr

from services.brain.models import Message, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage, model_name
from services.core.errors import ModelError
from services.core.settings import Settings

# Reserved tool-input key: a model's tool-call arguments that are not a JSON object arrive as
# {"_raw_arguments": "<the string as sent>"}, so the brain's schema check fails and tells the model.
RAW_ARGUMENTS_KEY = "_raw_arguments"

_FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}


class ModelCallError(ModelError):
    """A failed HTTP call to a model API, with the server's back-off hint for the brain's retry policy."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self.status = status
        self.retry_after = retry_after


def new_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client per provider; closed by the provider's `aclose`."""
    # trust_env=False: nothing below settings.py reads os.environ, so ambient proxy and certificate
    # variables are ignored; a proxy, if one is ever needed, belongs in Settings.
    # One client serves every run on the brain, so its pool must allow as many calls as runs in
    # flight; httpx's default of 100 connections would queue the rest.
    limits = httpx.Limits(
        max_connections=settings.model_max_connections,
        max_keepalive_connections=settings.model_max_connections,
    )
    return httpx.AsyncClient(timeout=settings.model_timeout_seconds, trust_env=False, limits=limits)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    provider: str,
    secret: SecretStr | None,
) -> dict[str, Any]:
    """POST `body` once and return the decoded JSON object, or raise ModelCallError."""
    try:
        response = await client.post(url, headers=headers, json=body)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        # A base URL that can never work; retrying would only hide the misconfiguration.
        raise ModelCallError(
            f"{provider}: bad base URL {_display(url)!r} ({type(exc).__name__})",
            code="model_misconfigured",
            retryable=False,
        ) from exc
    except httpx.TimeoutException as exc:
        raise ModelCallError(f"{provider}: request timed out", code="model_timeout", retryable=True) from exc
    except httpx.TransportError as exc:
        raise ModelCallError(
            _scrub(f"{provider}: cannot reach {_display(url)}: {type(exc).__name__}: {exc}", secret),
            code="model_unavailable",
            retryable=True,
        ) from exc
    if not response.is_success:
        raise status_error(response, provider, secret)
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise bad_response(provider, "response body is not a JSON object")
    return data


def status_error(response: httpx.Response, provider: str, secret: SecretStr | None) -> ModelCallError:
    """Classify a non-2xx answer: 408/409/429/5xx may succeed later, any other status will not."""
    status = response.status_code
    if status == 429:
        code, retryable = "model_rate_limited", True
    elif status in (408, 409) or status >= 500:
        code, retryable = "model_unavailable", True
    elif status in (401, 403):
        code, retryable = "model_auth", False
    else:
        code, retryable = "model_bad_request", False
    detail = _scrub(_error_detail(response), secret)
    return ModelCallError(
        f"{provider} returned HTTP {status}: {detail}",
        code=code,
        retryable=retryable,
        status=status,
        retry_after=parse_retry_after(response.headers),
    )


def bad_response(provider: str, why: str) -> ModelCallError:
    # A 2xx body we cannot read is usually a proxy or server hiccup, so another attempt may succeed.
    return ModelCallError(
        f"{provider}: unreadable response: {why}", code="model_bad_response", retryable=True
    )


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` as seconds or as an HTTP date."""
    try:
        if millis := headers.get("retry-after-ms"):
            return max(0.0, float(millis) / 1000)
        raw = headers.get("retry-after")
        if not raw:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_detail(response: httpx.Response) -> str:
    # Both APIs (and most compatible servers) say {"error": {"message": ...}}; otherwise show the text.
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        for key in ("message", "detail", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:500]
    return response.text[:500] or response.reason_phrase


def _display(url: str) -> str:
    # Without user:password@ and ?query, which some deployments use to carry credentials.
    return re.sub(r"//[^/@]*@", "//", url.split("?", 1)[0])


def _scrub(text: str, secret: SecretStr | None) -> str:
    # Some servers echo the key they rejected; it must not reach logs or the event log.
    value = secret.get_secret_value() if secret else ""
    return text.replace(value, "***") if value else text


class OpenAIProvider:
    """`POST {openai_base_url}/chat/completions` with function tools; the bearer key is optional."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.openai_base_url.rstrip("/") + "/chat/completions"
        self._key = settings.openai_api_key
        self._client = new_client(settings)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        headers = {"accept": "application/json"}
        if self._key and self._key.get_secret_value():
            headers["authorization"] = f"Bearer {self._key.get_secret_value()}"
        data = await post_json(
            self._client,
            self._url,
            headers=headers,
            body=to_wire(request),
            provider="openai",
            secret=self._key,
        )
        return from_wire(data)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def to_wire(request: ModelRequest) -> dict[str, Any]:
    """The Chat Completions request body for `request`."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_wire_message(message) for message in request.messages)
    # max_tokens rather than max_completion_tokens: every compatible server understands it.
    body: dict[str, Any] = {
        "model": model_name(request.model),
        "messages": messages,
        "max_tokens": request.max_tokens,
    }
    if request.tools:
        body["tools"] = [_wire_tool(tool) for tool in request.tools]
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        # Chat Completions has no error flag on tool results, so the flag travels in the text.
        content = f"Error: {message.content}" if message.is_error else message.content
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.input)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
    }


def from_wire(data: dict[str, Any]) -> ModelResponse:
    """Map a Chat Completions response body onto ModelResponse; stop reasons use the Anthropic vocabulary."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad_response("openai", "no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise bad_response("openai", "choice without a message")
    calls = tuple(_tool_call(raw) for raw in message.get("tool_calls") or () if isinstance(raw, dict))
    finish = choices[0].get("finish_reason")
    stop_reason = _FINISH_REASONS.get(finish, finish) if isinstance(finish, str) else "end_turn"
    if calls and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some local servers report "stop" even when they called tools
    usage = _object(data.get("usage"))
    return ModelResponse(
        text=_text(message.get("content")) or _text(message.get("refusal")),
        tool_calls=calls,
        usage=Usage(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        ),
        stop_reason=stop_reason,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers answer with content parts
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = _object(raw.get("function"))
    # A server that omits ids still needs unique ones: tool results are matched to calls by id.
    call_id = raw.get("id") or f"call_{uuid4().hex[:24]}"
    return ToolCall(
        id=str(call_id),
        name=str(function.get("name") or ""),
        input=parse_arguments(function.get("arguments")),
    )


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Decode tool-call arguments; anything but a JSON object is kept raw under RAW_ARGUMENTS_KEY."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except ValueError:
            return {RAW_ARGUMENTS_KEY: arguments}
        if isinstance(decoded, dict):
            return decoded
        return {RAW_ARGUMENTS_KEY: arguments}
    return {RAW_ARGUMENTS_KEY: json.dumps(arguments)}
