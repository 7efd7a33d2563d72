"""Calls survive the wire unchanged, and errors come back as the loopd exceptions they started as."""

from __future__ import annotations

import grpc
import pytest

from services.core import errors
from services.hands.contract import wire
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    Progress,
    SandboxStatus,
    SnapshotMissing,
)
from services.hands.contract.profile import (
    EgressDecision,
    HostRule,
    NetworkPolicy,
    SandboxProfile,
    SecretInjection,
)


@pytest.mark.parametrize("base", [None, "a" * 64])
def test_requests_round_trip(base: str | None) -> None:
    request = ExecuteRequest(
        "run-1", "call-1", "bash", {"command": "ls", "timeout": 3}, 12.5, base_snapshot=base
    )

    assert wire.request_from_pb(wire.request_to_pb(request)) == request


def test_a_request_carries_its_tenant_and_run_tree() -> None:
    request = ExecuteRequest("run-2", "call-1", "bash", {}, 1.0, tenant="acme", root_run_id="run-1")

    assert wire.request_from_pb(wire.request_to_pb(request)) == request


def test_a_request_carries_its_sandbox_profile() -> None:
    injection = SecretInjection(
        "token",
        "api.example.test",
        "Authorization",
        "Bearer {secret}",
        b"sealed",
        "placeholder-token",
        "TOKEN",
    )
    network = NetworkPolicy(
        "allowlist",
        (HostRule("api.example.test"), HostRule("*.example.test", (443, 8443))),
        (injection,),
        byte_budget=1000,
    )
    profile = SandboxProfile("env_1", 3, "img:1", "runsc", 1.5, 256 * 2**20, 64, network)
    request = ExecuteRequest("r", "c", "bash", {}, 1.0, profile=profile)

    assert wire.request_from_pb(wire.request_to_pb(request)) == request
    bare = ExecuteRequest("r", "c", "bash", {}, 1.0, profile=SandboxProfile("env_1", 1))
    assert wire.request_from_pb(wire.request_to_pb(bare)) == bare


def test_a_request_input_must_be_a_json_object() -> None:
    message = wire.request_to_pb(ExecuteRequest("r", "c", "bash", {}, 1.0))
    message.input_json = "[1, 2]"

    with pytest.raises(errors.InvalidRequest):
        wire.request_from_pb(message)


@pytest.mark.parametrize(
    "item",
    [
        OutputChunk("stderr", "boom\n"),
        Progress("snapshotting", 1800.0),
        ExecuteResult(True, "out", 0, None, None, False, 12, "sb", True),
        ExecuteResult(False, "[timed out]", None, "timeout", "too slow", True, 1000, "sb", False),
        ExecuteResult(True, "", 0, None, None, False, 3, "sb", False, snapshot_after="c" * 64, replayed=True),
        ExecuteResult(True, "a\\x00b", 0, None, None, False, 3, "sb", False, output_bytes=b"a\x00b"),
        ExecuteResult(
            True,
            "",
            0,
            None,
            None,
            False,
            3,
            "sb",
            False,
            egress=(
                EgressDecision(True, "api.example.test", 443, "", 10, 20, 1.5),
                EgressDecision(False, "other.example.test", 80, "not_allowed", at=2.0),
            ),
        ),
    ],
)
def test_events_round_trip(item: OutputChunk | ExecuteResult | Progress) -> None:
    assert wire.event_from_pb(wire.event_to_pb(item)) == item


def test_status_round_trips() -> None:
    status = HandsStatus("h1", 8, 7, (SandboxStatus("run-1", "sb-1", created_at=1.5, last_used_at=2.5),))

    assert wire.status_from_pb(wire.status_to_pb(status)) == status


def rpc_error(
    code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequest("bad tool"),
        errors.NotFound("no sandbox", code="sandbox_not_found"),
        errors.InfrastructureError("engine down", code="sandbox_unavailable"),
        errors.InfrastructureError("image missing", code="sandbox_image_missing", retryable=False),
        errors.SandboxLost("gone"),
        SnapshotMissing("no such snapshot"),
        errors.LoopdError("surprise"),
    ],
)
def test_errors_cross_the_wire_by_code(error: errors.LoopdError) -> None:
    received = wire.error_from_rpc(
        rpc_error(wire.status_of(error), error.message, wire.error_metadata(error))
    )

    assert type(received) is type(error)
    assert (received.code, received.retryable, received.message) == (
        error.code,
        error.retryable,
        error.message,
    )


def test_an_unknown_code_keeps_its_code_and_the_kind_of_its_status() -> None:
    received = wire.error_from_rpc(
        rpc_error(grpc.StatusCode.UNAVAILABLE, "later", (("loopd-error-code", "brand_new"),))
    )

    assert isinstance(received, errors.InfrastructureError)
    assert received.code == "brand_new" and not received.retryable


@pytest.mark.parametrize(
    "status", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED]
)
def test_transport_failures_mean_the_hands_is_unavailable(status: grpc.StatusCode) -> None:
    received = wire.error_from_rpc(rpc_error(status, "connection refused"))

    assert isinstance(received, errors.HandsUnavailable) and received.retryable
