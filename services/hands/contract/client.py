"""The brain's side of hands: one gRPC channel to one hands worker, speaking the dataclasses of api.py.

Failures raise loopd exceptions: an unreachable worker, a dropped stream or a missed deadline raise
HandsUnavailable (retryable: another worker may take the call); errors the worker reports keep their
loopd code. Tool failures are not exceptions: they come back as an ExecuteResult with ok=False (see
api.py for the codes). The hands' tool schemas live in tools.TOOL_SCHEMAS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import grpc

from services.core.errors import HandsUnavailable, HandsUnreachable
from services.hands.contract import collect, wire
from services.hands.contract.api import (
    ERROR_CODES,
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    Progress,
    ReleaseRequest,
    SandboxStatus,
)
from services.hands.contract.auth import client_interceptors
from services.hands.contract.proto import hands_pb2 as pb
from services.hands.contract.proto.hands_pb2_grpc import HandsStub

__all__ = [
    "ERROR_CODES",
    "ExecuteRequest",
    "ExecuteResult",
    "HandsClient",
    "HandsStatus",
    "OutputChunk",
    "ReleaseRequest",
    "SandboxStatus",
]

_R = TypeVar("_R")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
# A connection that dies in a network partition must not look like a quiet tool call. The worker's
# side gives up on data the brain no longer acknowledges (gRPC servers time out unacknowledged
# sends after 20 s) and, the link being cut, its goodbye never arrives; a brain that only listens
# would then wait out the whole phase deadline (the tool's timeout plus the margin, minutes) for a
# result that has long been recorded. Pinging the worker during calls finds the dead connection in
# KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS and fails the call as HandsUnavailable, and the retry gets the
# recorded result or restores the snapshot (the partition test in tests/faults showed the wait).
KEEPALIVE_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 10_000
CLIENT_OPTIONS = (
    *CHANNEL_OPTIONS,
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # A call whose tool prints nothing sends no data either way for its whole timeout: keep pinging.
    ("grpc.http2.max_pings_without_data", 0),
    # gRPC sends one ping at a time; a ping other than keepalive's (flow control sends some) that a
    # cut swallowed held the keepalive back for the default minute before the connection failed.
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
)
# The worker lets those pings in; by default it would answer pings more often than every 5 minutes
# without data by closing the connection.
SERVER_OPTIONS = (
    *CHANNEL_OPTIONS,
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
)


class HandsClient:
    def __init__(
        self, address: str, *, secret: str, deadline_margin: float = 30.0, rpc_timeout: float = 60.0
    ) -> None:
        """`secret` is the stack's hands secret; `deadline_margin` is added to each phase's deadline
        for the kill and the relay of what was left."""
        self.address = address
        self._interceptors = client_interceptors(secret)
        self._deadline_margin = deadline_margin
        self._rpc_timeout = rpc_timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: HandsStub | None = None
        self._closed = False

    async def __aenter__(self) -> HandsClient:
        self._channel = grpc.aio.insecure_channel(
            self.address, options=CLIENT_OPTIONS, interceptors=self._interceptors
        )
        self._stub = HandsStub(self._channel)  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None
        self._closed = True

    async def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        """Stream the call's output chunks; the last item is always its one ExecuteResult.

        A call that already finished (same run_id and call_id, on any worker sharing the ledger)
        yields only its recorded result, with replayed=True.

        There is no deadline for the whole call: each of the worker's Progress events says how long
        its phase may take (the call's timeout while the tool runs, the worker's snapshot deadline
        while it restores or snapshots the workspace), and the call fails as HandsUnavailable only
        when a phase outlives that plus the margin. Before the first, the call's timeout bounds it.
        """
        phase, budget = "starting", request.timeout_seconds if request.timeout_seconds > 0 else None
        loop = asyncio.get_running_loop()
        ends = None if budget is None else loop.time() + budget + self._deadline_margin
        call = self._hands().Execute(wire.request_to_pb(request))
        finished = heard = False
        try:
            while True:
                try:
                    async with asyncio.timeout_at(ends):
                        event = await call.read()
                except TimeoutError:
                    raise HandsUnavailable(
                        f"hands {self.address} outlived the {phase} deadline of call {request.call_id}"
                    ) from None
                if event is grpc.aio.EOF:
                    break
                heard = True
                item = wire.event_from_pb(event)
                if isinstance(item, Progress):
                    phase, ends = item.phase, loop.time() + item.deadline_seconds + self._deadline_margin
                    continue
                if item is None:
                    continue
                yield item
                if isinstance(item, ExecuteResult):
                    finished = True
                    return
        except grpc.aio.AioRpcError as exc:
            if not heard and wire.is_transport_failure(exc):
                # A transport failure before the worker's first event: the call never reached it.
                raise HandsUnreachable(str(wire.error_from_rpc(exc))) from None
            raise wire.error_from_rpc(exc) from None
        finally:
            if not finished:
                call.cancel()
        raise HandsUnavailable(f"hands {self.address} ended call {request.call_id} without a result")

    async def execute_collect(
        self, request: ExecuteRequest, on_chunk: Callable[[OutputChunk], Awaitable[None]] | None = None
    ) -> ExecuteResult:
        """Run a call to its end, handing each output chunk to `on_chunk` as it arrives."""
        return await collect(self, request, on_chunk)

    async def release(self, request: ReleaseRequest) -> None:
        """Destroy the run's sandbox; releasing twice is fine. Its snapshots and recorded results stay."""
        await self._unary(self._hands().Release, pb.ReleaseRequest(run_id=request.run_id), self._rpc_timeout)

    async def status(self) -> HandsStatus:
        response = await self._unary(self._hands().Status, pb.StatusRequest(), self._rpc_timeout)
        return wire.status_from_pb(response)

    async def aclose(self) -> None:
        await self.__aexit__(None, None, None)

    async def _unary(self, method: Callable[..., Awaitable[_R]], request: object, timeout: float) -> _R:
        try:
            return await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise wire.error_from_rpc(exc) from None

    def _hands(self) -> HandsStub:
        if self._stub is None:
            if self._closed:
                # A brain shares one client per worker between runs; when one run finds the worker
                # gone and closes it, the others must retry elsewhere, as for any lost worker.
                raise HandsUnavailable(f"the channel to hands {self.address} was closed")
            raise RuntimeError("use HandsClient as an async context manager")
        return self._stub


async def connect(address: str, *, secret: str) -> HandsClient:
    """A client with its channel open: how the brain reaches a hands worker over gRPC."""
    return await HandsClient(address, secret=secret).__aenter__()
