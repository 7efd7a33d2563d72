"""Refuses request bodies holding what PostgreSQL cannot store (a NUL, a lone surrogate, a number that
is not finite) with 422 `unstorable_input`, before a route parses them.

Each of these can only come from a JSON escape (\\u0000, \\udcff), a bare Infinity or NaN, or an
exponent of three digits, so a body without any of them passes after one bytes scan; only a suspect
body is parsed (once more than the route will) and walked.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.text import first_unstorable
from services.gateway.refusals import refuse

_SUSPECT = re.compile(rb"\\u|Infinity|NaN|[0-9][eE][+-]?[0-9]{3}")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class StorableInputMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        problem = unstorable(body)
        if problem is not None:
            await refuse(scope, send, 422, "unstorable_input", f"{problem}, which cannot be stored")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def unstorable(body: bytes) -> str | None:
    """What in a JSON body PostgreSQL cannot store, or None (also for a body that is not JSON)."""
    if not _SUSPECT.search(body):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None  # the route answers malformed JSON itself
    return first_unstorable(value, "body")


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)
