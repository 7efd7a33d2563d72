"""Generated gRPC stubs for loopd.hands.v1; regenerate with `python -m services.hands.contract.proto.generate`."""
