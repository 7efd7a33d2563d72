"""Shared-secret authentication of the hands gRPC port, as interceptors on both ends.

Any local user can reach a loopback port, and a hands worker runs code in every run's sandbox, so
each call carries `authorization: Bearer <secret>` and the worker checks it in constant time before
any servicer sees the request. Standard health checks stay open: they reveal only SERVING or not.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.core.errors import Unauthenticated
from services.hands.contract import wire

METADATA_KEY = "authorization"
_OPEN_PREFIX = "/grpc.health.v1.Health/"


def _bearer(secret: str) -> str:
    return f"Bearer {secret}"


class _WithSecret:
    def __init__(self, secret: str) -> None:
        self._value = _bearer(secret)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(tuple(details.metadata) if details.metadata else ()))
        metadata.add(METADATA_KEY, self._value)
        return details._replace(metadata=metadata)


class _UnaryUnaryAuth(_WithSecret, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamAuth(_WithSecret, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Awaitable[Any]], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


def client_interceptors(secret: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that put the secret on every call a channel makes.

    One object per kind of call: a channel files each interceptor under the first kind it is.
    """
    return [_UnaryUnaryAuth(secret), _UnaryStreamAuth(secret)]


class ServerAuth(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses, with UNAUTHENTICATED and loopd's error envelope, every call without the secret."""

    def __init__(self, secret: str) -> None:
        self._expected = _bearer(secret).encode()

    def allows(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> bool:
        given = next((value for key, value in metadata or () if key == METADATA_KEY), None)
        if given is None:
            return False
        given_bytes = given.encode() if isinstance(given, str) else given
        return hmac.compare_digest(given_bytes, self._expected)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if details.method.startswith(_OPEN_PREFIX) or self.allows(details.invocation_metadata):
            return handler
        return _refusal(handler)


async def _refuse(request: object, context: grpc.aio.ServicerContext) -> None:
    error = Unauthenticated("hands refuses calls without the deployment's hands secret")
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED, error.message, trailing_metadata=wire.error_metadata(error)
    )


def _refusal(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    # The refusal must have the method's own shape, or the server would mis-frame its answer.
    if handler is not None and handler.response_streaming:

        async def refuse_stream(request: object, context: grpc.aio.ServicerContext) -> Any:
            await _refuse(request, context)
            yield  # pragma: no cover - abort raises before this

        return grpc.unary_stream_rpc_method_handler(
            refuse_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        _refuse,
        request_deserializer=handler.request_deserializer if handler else None,
        response_serializer=handler.response_serializer if handler else None,
    )
