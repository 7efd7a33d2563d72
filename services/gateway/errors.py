"""Turns every failure into `{"error": {"code", "message"}}` with the right status; no stack traces."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.core.errors import LoopdError, RateLimited
from services.gateway.anthropic import errors as anthropic_errors
from services.gateway.anthropic.app import under_prefix

logger = logging.getLogger(__name__)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoopdError)
    async def loopd_error(_: Request, error: LoopdError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
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
        return error_response(422, "validation_error", details)

    app.add_exception_handler(StarletteHTTPException, _routing_refusal)  # type: ignore[arg-type]

    @app.exception_handler(DataError)
    async def unstorable(_: Request, error: DataError) -> JSONResponse:
        # Input checks at the edge should leave nothing for PostgreSQL to refuse; should one slip
        # through, it is still the request's fault, not the server's.
        reason = getattr(getattr(error.orig, "diag", None), "message_primary", None) or "refused"
        return error_response(422, "unstorable_input", f"the database cannot store the input: {reason}")

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        if error.connection_invalidated or _is_unavailable(error):
            # PostgreSQL is down or restarting: the request may succeed shortly, unchanged.
            logger.warning(
                "database unavailable on %s %s: %s",
                request.method,
                request.url.path,
                type(error.orig).__name__,
            )
            return error_response(
                503,
                "database_unavailable",
                "the database is unavailable; retry shortly",
                {"Retry-After": "1"},
            )
        return await unexpected(request, error)

    @app.exception_handler(RedisError)
    async def bus_error(request: Request, error: RedisError) -> JSONResponse:
        # What was committed stays committed: a lost wake-up is recovered by the brains' sweeper.
        logger.warning("bus unavailable on %s %s: %s", request.method, request.url.path, type(error).__name__)
        message = "the bus is unavailable; retry shortly (with the same Idempotency-Key, for a new run)"
        return error_response(503, "bus_unavailable", message, {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        # The server drops the connection after an unhandled error, so the response says it will.
        return error_response(500, "internal", "internal error; see the gateway log", {"Connection": "close"})


def _is_unavailable(error: DBAPIError) -> bool:
    """Connection-level failures (refused, reset, server shutting down), not a query's own fault."""
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return isinstance(error.orig, psycopg.OperationalError) and (
        not sqlstate or sqlstate.startswith(("08", "57P"))
    )


async def _routing_refusal(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """No route for the path, or not for its method (the Allow header says which)."""
    if under_prefix(request.url.path):
        # A path the mount did not match (one with a line break) still gets the view's envelope.
        return anthropic_errors.http_error_response(request.url.path, error)
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        error.status_code, "http_error"
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(error.status_code, code, str(error.detail), headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path; Starlette's own 405 names only the first route's."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)
