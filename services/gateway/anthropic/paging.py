"""Opaque page tokens: a list's position (the last item shown), tagged with the list it belongs to, so a
token is only ever read back by the list that wrote it."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from services.core.errors import InvalidRequest

_PREFIX = "page_"


def encode(kind: str, *position: Any) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, token: str, *shape: type) -> list[Any]:
    """The position in a token of list `kind`, whose parts have the types `shape`."""
    try:
        if not token.startswith(_PREFIX):
            raise ValueError("no prefix")
        body = token[len(_PREFIX) :]
        parts = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(parts, list) or parts[0] != kind or len(parts) != len(shape) + 1:
            raise ValueError("another list's token")
        position = parts[1:]
        if not all(type(value) is expected for value, expected in zip(position, shape, strict=True)):
            raise ValueError("a position of another shape")
        return position
    except (ValueError, TypeError, UnicodeDecodeError, IndexError):
        raise InvalidRequest("page is not a token this list gave out", code="invalid_page") from None


def encode_at(kind: str, at: datetime, item_id: str) -> str:
    """The token after an item listed by (creation time, id)."""
    return encode(kind, at.isoformat(), item_id)


def decode_at(kind: str, token: str | None) -> tuple[datetime, str] | None:
    if token is None:
        return None
    at, item_id = decode(kind, token, str, str)
    try:
        return datetime.fromisoformat(at), item_id
    except ValueError:
        raise InvalidRequest("page is not a token this list gave out", code="invalid_page") from None
