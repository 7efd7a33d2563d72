"""The hands call path: one call run end to end, the tools, the worker's call slots, and the two ways in:
the Hands protocol in process (in_process.py) and the gRPC servicer that serves it."""
