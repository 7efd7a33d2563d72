"""Page tokens are opaque and read back only by the list (and order) that wrote them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.core.errors import InvalidRequest
from services.gateway.anthropic import paging


def test_a_token_gives_back_its_position() -> None:
    at = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    token = paging.encode_at("agents", at, "agent_1")
    assert token.startswith("page_") and "agent_1" not in token
    assert paging.decode_at("agents", token) == (at, "agent_1")
    assert paging.decode("events:run_1", paging.encode("events:run_1", 7, 2, "asc"), int, int, str) == [
        7,
        2,
        "asc",
    ]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "page_",
        "page_!!!",
        "agents",
        paging.encode("sessions:desc", "2026-12-01T00:00:00+00:00", "run_1"),
        paging.encode("agents", 1, 2),
        paging.encode("agents", "not a time", "x"),
        paging.encode("agents", "2026-12-01T00:00:00+00:00"),
    ],
)
def test_a_token_of_another_list_or_shape_is_refused(token: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        paging.decode_at("agents", token)
    assert refused.value.code == "invalid_page"


def test_a_two_way_cursor_keeps_its_direction_and_refuses_other_shapes() -> None:
    at = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    back = paging.Cursor(at, "run_1", backward=True)
    assert paging.decode_cursor("sessions:desc", paging.encode_cursor("sessions:desc", back)) == back
    assert paging.decode_cursor("sessions:desc", None) is None
    for token in (
        paging.encode_at("sessions:desc", at, "run_1"),
        paging.encode("sessions:desc", at.isoformat(), "run_1", "sideways"),
        paging.encode_cursor("sessions:asc", back),
    ):
        with pytest.raises(InvalidRequest) as refused:
            paging.decode_cursor("sessions:desc", token)
        assert refused.value.code == "invalid_page"


async def test_two_way_pages_name_a_side_only_when_an_item_lies_there() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    items = [(at, f"run_{i}") for i in range(5)]

    async def fetch(after: paging.Position | None, reverse: bool, count: int) -> list[paging.Position]:
        ordered = items[::-1] if reverse else items
        start = 0 if after is None else ordered.index(after) + 1
        return ordered[start : start + count]

    def position(item: paging.Position) -> paging.Position:
        return item

    first = await paging.two_way("l", None, 2, fetch, position)
    assert first.shown == items[:2] and first.prev_page is None and first.next_page
    last = await paging.two_way(
        "l", (await paging.two_way("l", first.next_page, 2, fetch, position)).next_page, 2, fetch, position
    )
    assert last.shown == items[4:] and last.next_page is None and last.prev_page
    middle = await paging.two_way("l", last.prev_page, 2, fetch, position)
    assert middle.shown == items[2:4] and middle.next_page and middle.prev_page
    start = await paging.two_way("l", middle.prev_page, 2, fetch, position)
    assert start.shown == items[:2] and start.prev_page is None
