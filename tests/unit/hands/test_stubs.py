"""The committed gRPC stubs are exactly what the .proto generates."""

from __future__ import annotations

from pathlib import Path

from services.hands.contract.proto import generate


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)

    assert sorted(p.name for p in written) == sorted(generate.STUBS)
    for path in written:
        committed = generate.OUT_DIR / path.name
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: run {generate.__name__}"


def test_stubs_import_from_this_package() -> None:
    from services.hands.contract.proto import hands_pb2, hands_pb2_grpc

    assert hands_pb2_grpc.HandsStub.__module__ == "services.hands.contract.proto.hands_pb2_grpc"
    assert hands_pb2.ExecuteRequest.DESCRIPTOR.full_name == "loopd.hands.v1.ExecuteRequest"
