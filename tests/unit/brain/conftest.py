"""The in-process loop for the brain's tests: real PostgreSQL, in-process bus, gateway and hands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.brain.loop import Loop


@pytest.fixture
async def loop(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with Loop(database_url, tmp_path) as running:
        yield running
