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
