"""What the brain imports from hands: the call's types, the gRPC client and its wire format, the tools.

Also the snapshot manifest format. Nothing here needs the Docker SDK or reaches into the worker.
"""
