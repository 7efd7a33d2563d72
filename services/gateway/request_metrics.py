"""Counts every request by method, route template and status, and times it until its response starts.

The route is the template (`/v1/runs/{run_id}`), never the raw path, so a label takes only as many
values as there are routes; a path that matches none is counted as `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

UNMATCHED = "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        """`routes` names the template of a request answered before routing (a body over the limit)."""
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before it answered

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                HTTP_REQUEST_SECONDS.labels(scope["method"], self._template(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            HTTP_REQUESTS.labels(scope["method"], self._template(scope), str(status)).inc()

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")  # set by the router once it matched
        if route is None:
            route = next((r for r in self.routes if r.matches(scope)[0] is not Match.NONE), None)
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else UNMATCHED
