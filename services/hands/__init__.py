"""Hands workers: gRPC servers that run tool calls in disposable Docker sandboxes."""
