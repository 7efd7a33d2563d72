"""The gateway: loopd's public REST API and SSE streams."""
