"""The answer of a middleware that refuses a request before any route sees it (a body too large, input
the database cannot store): in loopd's envelope, or in the Managed Agents API's under its prefix, so the
SDK raises its own exception class for these too."""

from __future__ import annotations

import json

from starlette.types import Scope, Send

from services.gateway.anthropic.app import under_prefix
from services.gateway.anthropic.errors import envelope


async def refuse(
    scope: Scope, send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    extra = dict(headers or {})
    if under_prefix(scope.get("path", "")):
        status, body, wire_headers = envelope(status, code, message, extra)
    else:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        wire_headers = extra
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in wire_headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
