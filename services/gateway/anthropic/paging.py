"""Opaque page tokens: a list's position (the last item shown, or for a list that pages both ways the
first one, toward the previous page), tagged with the list it belongs to, so a token is only ever read
back by the list that wrote it."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from services.core.errors import InvalidRequest

_PREFIX = "page_"
T = TypeVar("T")


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


@dataclass(frozen=True)
class Cursor:
    """A position in a list that pages both ways: the items after `item`, or (backward) before it."""

    at: datetime
    item_id: str
    backward: bool = False


def encode_cursor(kind: str, cursor: Cursor) -> str:
    return encode(kind, cursor.at.isoformat(), cursor.item_id, "prev" if cursor.backward else "next")


def decode_cursor(kind: str, token: str | None) -> Cursor | None:
    if token is None:
        return None
    at, item_id, toward = decode(kind, token, str, str, str)
    if toward not in ("next", "prev"):
        raise InvalidRequest("page is not a token this list gave out", code="invalid_page")
    try:
        return Cursor(datetime.fromisoformat(at), item_id, backward=toward == "prev")
    except ValueError:
        raise InvalidRequest("page is not a token this list gave out", code="invalid_page") from None


Position = tuple[datetime, str]
# Up to `limit` rows strictly past a position (None: from the start), in the list's order or, when
# `reverse`, against it.
Fetch = Callable[[Position | None, bool, int], Awaitable[Sequence[T]]]


@dataclass(frozen=True)
class TwoWayPage(Generic[T]):
    shown: list[T]
    next_page: str | None
    prev_page: str | None


async def two_way(
    kind: str, token: str | None, limit: int, fetch: Fetch[T], position: Callable[[T], Position]
) -> TwoWayPage[T]:
    """One page of a list read either way from a token, with the tokens of the pages on both sides;
    a side's token is given only when an item lies there."""
    cursor = decode_cursor(kind, token)
    start = None if cursor is None else (cursor.at, cursor.item_id)
    backward = cursor is not None and cursor.backward
    rows = list(await fetch(start, backward, limit + 1))
    more = len(rows) > limit
    shown = rows[:limit][::-1] if backward else rows[:limit]
    if not shown:
        return TwoWayPage(shown, None, None)
    first, last = position(shown[0]), position(shown[-1])
    if backward:
        before, after = more, bool(await fetch(last, False, 1))
    else:
        before, after = start is not None and bool(await fetch(first, True, 1)), more
    return TwoWayPage(
        shown,
        encode_cursor(kind, Cursor(*last)) if after else None,
        encode_cursor(kind, Cursor(*first, backward=True)) if before else None,
    )
