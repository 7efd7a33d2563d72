"""The bodies the Managed Agents view answers with, in the shapes of the API's own types, so that
`/anthropic/openapi.json` describes every response and the contract test can hold each answer to it.

Each route declares its body and error statuses with `answers`, which serves the body with
`response_model_exclude_unset`: an optional field a route leaves out stays out of the wire, as the
API leaves it out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Body(BaseModel):
    # A field a route adds without adding it here fails the tests, instead of vanishing from the wire.
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A body whose fields are partly the caller's own (an echoed event) or still growing (an
    environment's config): the known fields are typed, others pass through."""

    model_config = ConfigDict(extra="allow")


class ErrorDetails(Body):
    error_code: str = Field(description="loopd's own stable code, e.g. run_not_found or not_served")


class ErrorObject(Body):
    type: str = Field(description="the API's error type, e.g. not_found_error")
    message: str
    details: ErrorDetails


class ErrorEnvelope(Body):
    """Every error under /anthropic: the SDK raises its exception class from the status."""

    type: Literal["error"]
    error: ErrorObject
    request_id: str


_WHY = {
    400: "The request is invalid, or asks for something loopd does not serve.",
    401: "No API key, or one that is unknown, revoked or expired.",
    403: "The API key's role does not allow this.",
    404: "Not found, or a resource of the API that loopd does not serve (error_code not_served).",
    409: "The request conflicts with the resource's state; the SDK does not retry it.",
    413: "The request body is too large.",
    429: "Too many requests for this API key; retry-after says when to try again.",
    503: "A dependency is unavailable.",
}
# What every route can answer: a refusal of its key or input, a rate limit, a lost dependency.
COMMON = (400, 401, 403, 429, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error statuses it can answer, each with the envelope."""
    every = sorted({*COMMON, *statuses})
    return {status: {"model": ErrorEnvelope, "description": _WHY[status]} for status in every}


def answers(model: type[BaseModel] | None, *statuses: int) -> dict[str, Any]:
    """The decorator arguments of a route that answers `model` (None: a stream) and these errors."""
    documented: dict[str, Any] = {"responses": errors(*statuses)}
    if model is None:
        stream = {"text/event-stream": {"schema": {"type": "string"}}}
        documented["responses"][200] = {"description": "Server-sent events.", "content": stream}
    else:
        documented.update(response_model=model, response_model_exclude_unset=True)
    return documented
