"""The hands call path: the gRPC servicer, one call run end to end, the tools and the worker's call slots."""
