"""The API's shared parameter types: one pattern for every id and cursor, numbers within what PostgreSQL
holds, and the error responses each route documents in its OpenAPI operation."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header, Path, Query
from pydantic import BaseModel, Field

# Run, agent and call ids: what loopd and the model providers generate, and nothing that needs escaping.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
INT4_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,19}\Z")

RunId = Annotated[str, Path(pattern=ID_PATTERN, description="a run id")]
AgentId = Annotated[str, Path(pattern=ID_PATTERN, description="an agent id")]
CallId = Annotated[str, Path(pattern=ID_PATTERN, description="a tool call id")]
KeyIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="an API key's id (never the key)")]
TenantId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="a tenant id")]
IdField = Annotated[str, Field(pattern=ID_PATTERN)]
# A cursor is opaque: its decoder refuses anything it did not write (code invalid_cursor).
Cursor = Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")]
AfterSeq = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="only events after this seq")]
Version = Annotated[int, Field(ge=1, le=INT4_MAX)]
VersionQuery = Annotated[int | None, Query(ge=1, le=INT4_MAX, description="a version; the latest if unset")]
Seq = Annotated[int, Field(ge=0, le=BIGINT_MAX)]


def seq_of(text: str) -> int | None:
    """An event seq written in decimal digits (a Last-Event-ID), or None when it is not one."""
    if not _DIGITS.match(text):
        return None
    seq = int(text)
    return seq if seq <= BIGINT_MAX else None


IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable and machine-readable, e.g. run_not_found")
    message: str


class ErrorResponse(BaseModel):
    """Every error the API answers: the handlers in errors.py produce it."""

    error: ErrorDetail


_WHY = {
    400: "The request is malformed (its JSON, a path).",
    401: "No API key, or one that is unknown, revoked or expired.",
    403: "The API key's role does not allow this.",
    404: "Not found.",
    409: "The request conflicts with the resource's state.",
    413: "The request body is too large.",
    422: "The input is invalid or cannot be stored.",
    429: "Too many requests for this API key; Retry-After says when to try again.",
    503: "A dependency is unavailable.",
}
BODY_ERRORS = (400, 413, 422)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error statuses it can answer, each with the error body."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in sorted(set(statuses))}
