"""Fixtures for the command line tests: point `loopd` at an in-memory gateway."""

from __future__ import annotations

from collections.abc import Callable

import loopd.cli_context
import pytest
from loopd import Client, ReconnectPolicy

from tests.unit.client.fake_gateway import FakeGateway


@pytest.fixture
def use_gateway(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeGateway], None]:
    """Make every command talk to `gateway`, reconnecting at once when a stream drops."""

    def install(gateway: FakeGateway) -> None:
        def make_client(url: str, *, api_key: str | None = None) -> Client:
            policy = ReconnectPolicy(initial_delay=0, max_delay=0)
            return Client(url, api_key=api_key, transport=gateway.transport(), reconnect=policy)

        monkeypatch.setattr(loopd.cli_context, "Client", make_client)

    return install
