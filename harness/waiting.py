"""Wait for conditions instead of sleeping for fixed times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Retry `check` until it returns a truthy value without raising; re-raise its last failure on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
            last_error = AssertionError(f"condition still false: {value!r}")
        except AssertionError as error:
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s") from last_error
        await asyncio.sleep(interval)


def eventually_sync(check: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last_error = AssertionError(f"condition still false: {value!r}")
        except AssertionError as error:
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s") from last_error
        time.sleep(interval)
