"""Checks the API key of every request under /v1 and /anthropic before anything reads its body, so a
request without a usable key gets its 401 (or its key's 429) whatever the body holds: malformed, over
the size limit or not storable. The Caller is left in the request scope for the route dependencies
(auth.py), which check its role.

A refusal is answered by the exception handlers of the app that serves the path, so /anthropic keeps
its own error envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.auth import CALLER_SCOPE_KEY, identify
from services.gateway.deps import GatewayServices

# The documents describe the API for clients and generators, which fetch them without a key.
_OPEN = frozenset({"/anthropic/openapi.json"})

Handler = Callable[[Request, Exception], Awaitable[Response]]


class KeyGateMiddleware:
    def __init__(self, app: ASGIApp, answered_by: Mapping[str, Starlette]) -> None:
        """`answered_by` maps each guarded path prefix to the app whose handlers answer its refusals."""
        self.app = app
        self.answered_by = answered_by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answering = self._guarding(scope)
        if answering is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        services: GatewayServices = scope["app"].state.services
        try:
            scope[CALLER_SCOPE_KEY] = await identify(services, request)
        except Exception as error:
            handler = _handler_for(answering, error)
            if handler is None:
                raise
            response = await handler(request, error)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _guarding(self, scope: Scope) -> Starlette | None:
        if scope["type"] != "http" or scope["path"] in _OPEN:
            return None
        path: str = scope["path"]
        for prefix, app in self.answered_by.items():
            if path == prefix or path.startswith(f"{prefix}/"):
                return app
        return None


def _handler_for(app: Starlette, error: Exception) -> Handler | None:
    """The app's handler for `error`, found as Starlette finds it: by the error's class, nearest first."""
    for cls in type(error).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return cast(Handler, handler)
    return None
