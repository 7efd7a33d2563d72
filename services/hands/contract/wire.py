"""The hands wire format: protobuf messages <-> the dataclasses of api.py, and the error envelope.

Errors cross the wire as a gRPC status plus trailing metadata holding the loopd error code and whether
retrying can help; the client rebuilds the matching loopd exception from the code, never a class path.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from services.core import errors
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    Progress,
    SandboxStatus,
    SnapshotMissing,
)
from services.hands.contract.profile import egress_from_pb, egress_to_pb, profile_from_pb, profile_to_pb
from services.hands.contract.proto import hands_pb2 as pb

ERROR_CODE_KEY = "loopd-error-code"
RETRYABLE_KEY = "loopd-error-retryable"

_ERROR_CLASSES: tuple[type[errors.LoopdError], ...] = (
    errors.InvalidRequest,
    errors.BadRequest,
    errors.NotFound,
    errors.Conflict,
    errors.LeaseLost,
    errors.Unauthenticated,
    errors.InfrastructureError,
    errors.HandsUnavailable,
    errors.HandsStopping,
    errors.SandboxLost,
    errors.ModelError,
    SnapshotMissing,
)
_BY_CODE = {cls.code: cls for cls in _ERROR_CLASSES}
_STATUS_OF: tuple[tuple[type[errors.LoopdError], grpc.StatusCode], ...] = (
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.InfrastructureError, grpc.StatusCode.UNAVAILABLE),
)
# Used only for codes this client does not know (a newer worker), so the exception keeps its kind.
_CLASS_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidRequest,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: errors.Conflict,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: errors.InfrastructureError,
}
_TRANSPORT_FAILURES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


def status_of(error: errors.LoopdError) -> grpc.StatusCode:
    for cls, status in _STATUS_OF:
        if isinstance(error, cls):
            return status
    return grpc.StatusCode.INTERNAL


def error_metadata(error: errors.LoopdError) -> tuple[tuple[str, str], ...]:
    return ((ERROR_CODE_KEY, error.code), (RETRYABLE_KEY, "true" if error.retryable else "false"))


def is_transport_failure(error: grpc.aio.AioRpcError) -> bool:
    """Whether the RPC failed in the transport (no worker's error code came with it)."""
    codes = (key for key, _ in (error.trailing_metadata() or ()))
    return error.code() in _TRANSPORT_FAILURES and ERROR_CODE_KEY not in codes


def error_from_rpc(error: grpc.aio.AioRpcError) -> errors.LoopdError:
    """The loopd exception an RPC failure stands for; transport failures mean the hands is unavailable."""
    metadata = {key: value for key, value in (error.trailing_metadata() or ()) if isinstance(value, str)}
    message = error.details() or error.code().name
    code = metadata.get(ERROR_CODE_KEY)
    if code is None:
        if error.code() in _TRANSPORT_FAILURES:
            return errors.HandsUnavailable(f"hands unavailable: {message}")
        return errors.InfrastructureError(
            f"hands call failed ({error.code().name}): {message}", code="hands_error"
        )
    cls = _BY_CODE.get(code) or _CLASS_OF_STATUS.get(error.code(), errors.LoopdError)
    return cls(message, code=code, retryable=metadata.get(RETRYABLE_KEY) == "true")


def request_to_pb(request: ExecuteRequest) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        run_id=request.run_id,
        call_id=request.call_id,
        tool=request.tool,
        input_json=json.dumps(request.input),
        timeout_seconds=request.timeout_seconds,
        base_snapshot=request.base_snapshot,
        workspace_bytes=request.workspace_bytes,
        tenant=request.tenant,
        root_run_id=request.root_run_id,
        profile=profile_to_pb(request.profile) if request.profile is not None else None,
    )


def request_from_pb(message: pb.ExecuteRequest) -> ExecuteRequest:
    try:
        payload: Any = json.loads(message.input_json or "{}")
    except json.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"input_json is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise errors.InvalidRequest("input_json must be a JSON object")
    return ExecuteRequest(
        run_id=message.run_id,
        call_id=message.call_id,
        tool=message.tool,
        input=payload,
        timeout_seconds=message.timeout_seconds,
        base_snapshot=message.base_snapshot if message.HasField("base_snapshot") else None,
        workspace_bytes=message.workspace_bytes if message.HasField("workspace_bytes") else None,
        tenant=message.tenant,
        root_run_id=message.root_run_id,
        profile=profile_from_pb(message.profile) if message.HasField("profile") else None,
    )


def event_to_pb(item: OutputChunk | ExecuteResult | Progress) -> pb.ExecuteEvent:
    if isinstance(item, OutputChunk):
        return pb.ExecuteEvent(chunk=pb.OutputChunk(stream=item.stream, data=item.data))
    if isinstance(item, Progress):
        return pb.ExecuteEvent(progress=pb.Progress(phase=item.phase, deadline_seconds=item.deadline_seconds))
    return pb.ExecuteEvent(
        result=pb.ExecuteResult(
            ok=item.ok,
            output=item.output,
            exit_code=item.exit_code,
            error=item.error or "",
            error_message=item.error_message or "",
            truncated=item.truncated,
            duration_ms=item.duration_ms,
            sandbox_id=item.sandbox_id,
            sandbox_created=item.sandbox_created,
            snapshot_after=item.snapshot_after,
            replayed=item.replayed,
            output_bytes=item.output_bytes,
            egress=[egress_to_pb(decision) for decision in item.egress],
        )
    )


def event_from_pb(message: pb.ExecuteEvent) -> OutputChunk | ExecuteResult | Progress | None:
    """None for an event this client does not understand (a newer worker)."""
    kind = message.WhichOneof("event")
    if kind == "chunk":
        return OutputChunk(stream=message.chunk.stream, data=message.chunk.data)
    if kind == "progress":
        return Progress(phase=message.progress.phase, deadline_seconds=message.progress.deadline_seconds)
    if kind != "result":
        return None
    result = message.result
    return ExecuteResult(
        ok=result.ok,
        output=result.output,
        exit_code=result.exit_code if result.HasField("exit_code") else None,
        error=result.error or None,
        error_message=result.error_message or None,
        truncated=result.truncated,
        duration_ms=result.duration_ms,
        sandbox_id=result.sandbox_id,
        sandbox_created=result.sandbox_created,
        snapshot_after=result.snapshot_after if result.HasField("snapshot_after") else None,
        replayed=result.replayed,
        output_bytes=result.output_bytes if result.HasField("output_bytes") else None,
        egress=tuple(egress_from_pb(decision) for decision in result.egress),
    )


def status_to_pb(status: HandsStatus) -> pb.StatusResponse:
    return pb.StatusResponse(
        hands_id=status.hands_id,
        slots_total=status.slots_total,
        slots_free=status.slots_free,
        sandboxes=[
            pb.SandboxStatus(
                run_id=s.run_id, sandbox_id=s.sandbox_id, created_at=s.created_at, last_used_at=s.last_used_at
            )
            for s in status.sandboxes
        ],
    )


def status_from_pb(message: pb.StatusResponse) -> HandsStatus:
    return HandsStatus(
        hands_id=message.hands_id,
        slots_total=message.slots_total,
        slots_free=message.slots_free,
        sandboxes=tuple(
            SandboxStatus(s.run_id, s.sandbox_id, created_at=s.created_at, last_used_at=s.last_used_at)
            for s in message.sandboxes
        ),
    )
