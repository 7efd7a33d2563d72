"""What the brain imports from hands: the Hands boundary, the call's types, the gRPC client and its
wire format, the tools, and the snapshot manifest format. Nothing here needs the Docker SDK or reaches
into the worker.

`Hands` is satisfied by two backends: `HandsClient` (client.py) over gRPC, and `InProcessHands`
(calls/in_process.py), the worker's call path called directly, which the gRPC servicer serves too.
So the brain's loop also runs without gRPC or a second process; one contract test holds both.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Protocol

from services.core.errors import HandsUnavailable
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    ReleaseRequest,
)


class Hands(Protocol):
    def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        """Stream the call's output chunks; the last item is always its one ExecuteResult.

        A call that already finished (same run_id and call_id) yields only its recorded result, with
        replayed=True. Closing the stream early stops the call.
        """
        ...

    async def release(self, request: ReleaseRequest) -> None:
        """Destroy the run's sandbox; releasing twice is fine. Its snapshots and recorded results stay."""
        ...

    async def status(self) -> HandsStatus: ...

    async def aclose(self) -> None: ...


Connect = Callable[[str], Awaitable[Hands]]
"""How the brain reaches the hands worker at an address (as the registry lists it)."""


def grpc_connector(secret: str) -> Connect:
    """Connects over gRPC, presenting the stack's hands secret; grpc is imported only on this path."""

    async def connect(address: str) -> Hands:
        from services.hands.contract.client import connect as open_channel

        return await open_channel(address, secret=secret)

    return connect


async def collect(
    hands: Hands, request: ExecuteRequest, on_chunk: Callable[[OutputChunk], Awaitable[None]] | None = None
) -> ExecuteResult:
    """Run a call to its end, handing each output chunk to `on_chunk` as it arrives."""
    async with aclosing(hands.execute(request)) as items:
        async for item in items:
            if isinstance(item, ExecuteResult):
                return item
            if on_chunk is not None:
                await on_chunk(item)
    raise HandsUnavailable(f"hands ended call {request.call_id} without a result")
