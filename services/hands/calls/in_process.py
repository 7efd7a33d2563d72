"""Hands in process: one worker's call path behind the Hands protocol, without gRPC.

The gRPC servicer serves this same object, so a brain in the worker's process (tests, a one-process
stack) and a brain across the wire get the same behaviour. Loopd errors pass through; anything else
becomes the LoopdError the gRPC client would rebuild from the servicer's INTERNAL status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from services.core.errors import LoopdError
from services.hands.calls.execute import Calls
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    Progress,
    ReleaseRequest,
)
from services.hands.fleet.pool import SandboxPool

log = logging.getLogger(__name__)


class InProcessHands:
    def __init__(self, calls: Calls, pool: SandboxPool, status: Callable[[], HandsStatus]) -> None:
        self._calls = calls
        self._pool = pool
        self._status = status

    async def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        async with aclosing(self.paced(request)) as items:
            async for item in items:
                # Progress paces a transport's deadlines; in process there are none to pace.
                if not isinstance(item, Progress):
                    yield item

    async def paced(
        self, request: ExecuteRequest
    ) -> AsyncGenerator[OutputChunk | ExecuteResult | Progress, None]:
        """`execute`, with the call's Progress events, which the servicer sends over the wire."""
        try:
            async with aclosing(self._calls.execute(request)) as items:
                async for item in items:
                    yield item
        except LoopdError:
            raise
        except Exception as error:
            raise _unexpected("Execute", error) from error

    async def release(self, request: ReleaseRequest) -> None:
        try:
            await self._pool.release(request.run_id)
        except LoopdError:
            raise
        except Exception as error:
            raise _unexpected("Release", error) from error

    async def status(self) -> HandsStatus:
        return self._status()

    async def aclose(self) -> None:
        """The call path belongs to whoever built it; a caller only lets go of this view of it."""


def _unexpected(method: str, error: Exception) -> LoopdError:
    log.exception("hands %s failed", method, exc_info=error)
    return LoopdError(f"hands {method} failed: {error}")
