"""The API's error envelope, `{"type": "error", "error": {"type", "message", "details"}}`, for every
failure under /anthropic, so the SDK raises its own exception classes; loopd's code is kept as
`details.error_code`.

Statuses follow the API: invalid input is a 400 (loopd's own API says 422), a conflict says the SDK must
not retry it, and a 429 carries the retry headers the SDK honours.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.errors import LoopdError, RateLimited

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}
# loopd's codes whose status differs on this wire.
_STATUS_OF_CODE = {"environment_archived": 400}
# Resources of the API that loopd does not serve (yet), by the path segments after /v1 ("*" is an id):
# a clean 404 that says so, with error_code not_served.
UNSERVED: dict[tuple[str, ...], str] = {
    ("vaults",): "vaults",
    ("files",): "files",
    ("skills",): "skills",
    ("memory_stores",): "memory stores",
    ("deployments",): "deployments",
    ("deployment_runs",): "deployment runs",
    ("webhooks",): "webhooks",
    ("dreams",): "dreams",
    ("user_profiles",): "user profiles",
    ("tunnels",): "tunnels",
    ("organizations",): "organization administration",
    ("messages",): "messages (the Messages API)",
    ("models",): "models",
    ("sessions", "*", "resources"): "session resources",
    ("sessions", "*", "threads"): "session threads",
    ("environments", "*", "work"): "environment work (self-hosted runners)",
}


def envelope(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """The status, body and headers of one error answer."""
    status = _STATUS_OF_CODE.get(code, 400 if status == 422 else status)
    request_id = f"req_{secrets.token_hex(12)}"
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message, "details": {"error_code": code}},
        "request_id": request_id,
    }
    out = {"request-id": request_id, **(headers or {})}
    if 400 <= status < 500 and status != 429:
        # The SDK retries a 409 unless told not to: a stale version or a finished session stays so.
        out["x-should-retry"] = "false"
    return status, json.dumps(body).encode(), out


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    status, body, out = envelope(status, code, message, headers)
    return JSONResponse(json.loads(body), status_code=status, headers=out)


def _unserved(path: str) -> str | None:
    """What a path names among the resources loopd does not serve, or None."""
    parts = [part for part in path.removeprefix("/anthropic").split("/") if part]
    if parts[:1] != ["v1"]:
        return None
    for pattern, what in UNSERVED.items():
        given = parts[1 : 1 + len(pattern)]
        if len(given) == len(pattern) and all(p in ("*", g) for p, g in zip(pattern, given, strict=True)):
            return what
    return None


def http_error_response(path: str, error: StarletteHTTPException) -> JSONResponse:
    """A routing refusal (no such route, or not this method) under the prefix: `not_served` when the
    path names a resource of the API that loopd does not serve."""
    unserved = _unserved(path) if error.status_code in (404, 405) else None
    if unserved is not None:
        message = f"loopd's Managed Agents API does not serve {unserved} (see docs/managed-agents.md)"
        return error_response(404, "not_served", message)
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        error.status_code, "http_error"
    )
    return error_response(error.status_code, code, str(error.detail), dict(error.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoopdError)
    async def loopd_error(_: Request, error: LoopdError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(error, RateLimited):
            seconds = max(1, math.ceil(error.retry_after))
            headers = {"retry-after": str(seconds), "retry-after-ms": str(int(error.retry_after * 1000))}
        elif error.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(error.http_status, error.code, error.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        details = "; ".join(
            f"{'.'.join(str(part) for part in p.get('loc', ()) if part != 'body') or 'body'}: {p.get('msg')}"
            for p in problems[:10]
        )
        return error_response(400, "validation_error", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return http_error_response(request.url.path, error)

    @app.exception_handler(DataError)
    async def unstorable(_: Request, error: DataError) -> JSONResponse:
        reason = getattr(getattr(error.orig, "diag", None), "message_primary", None) or "refused"
        return error_response(400, "unstorable_input", f"the database cannot store the input: {reason}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; see the gateway log", {"Connection": "close"})
