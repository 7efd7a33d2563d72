"""The Hands gRPC servicer: the edge where wire messages become calls and loopd errors become statuses.

Behind it is the worker's Hands in process (in_process.py), so a call over gRPC and a call in process
take the same path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import NoReturn

import grpc

from services.core.errors import LoopdError
from services.hands.calls.in_process import InProcessHands
from services.hands.contract import wire
from services.hands.contract.api import ReleaseRequest
from services.hands.contract.proto import hands_pb2 as pb
from services.hands.contract.proto import hands_pb2_grpc

log = logging.getLogger(__name__)


class HandsServicer(hands_pb2_grpc.HandsServicer):
    def __init__(self, hands: InProcessHands) -> None:
        self._hands = hands

    async def Execute(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        async with _as_status(context, "Execute"):
            execute_request = wire.request_from_pb(request)
            async with aclosing(self._hands.paced(execute_request)) as items:
                async for item in items:
                    yield wire.event_to_pb(item)

    async def Release(
        self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseResponse:
        async with _as_status(context, "Release"):
            await self._hands.release(ReleaseRequest(request.run_id))
        return pb.ReleaseResponse()

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        return wire.status_to_pb(await self._hands.status())


@asynccontextmanager
async def _as_status(context: grpc.aio.ServicerContext, method: str) -> AsyncIterator[None]:
    """Turn a loopd error into its gRPC status and error envelope, and anything else into INTERNAL."""
    try:
        yield
    except LoopdError as exc:
        await _abort(context, exc)
    except Exception as exc:
        await _abort_unexpected(context, method, exc)


async def _abort(context: grpc.aio.ServicerContext, error: LoopdError) -> NoReturn:
    await context.abort(wire.status_of(error), error.message, trailing_metadata=wire.error_metadata(error))
    raise AssertionError("context.abort returned")


async def _abort_unexpected(context: grpc.aio.ServicerContext, method: str, error: Exception) -> NoReturn:
    log.exception("hands %s failed", method, exc_info=error)
    await _abort(context, LoopdError(f"hands {method} failed: {error}"))
