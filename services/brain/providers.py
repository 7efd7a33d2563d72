"""One model provider per backend for the life of a brain, so every run shares its HTTP connection
pool instead of paying for a new client (and TLS context) at every wake-up. Each call is timed."""

from __future__ import annotations

import time
from typing import Any

from services.brain.models import ModelProvider, ModelRequest, ModelResponse, build_provider
from services.core.agents import AgentSpec
from services.core.metrics import MODEL_CALL_SECONDS, outcome
from services.core.settings import Settings


class ProviderPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._shared: dict[str, ModelProvider] = {}

    def for_agent(self, spec: AgentSpec) -> ModelProvider:
        backend = spec.model.partition("/")[0]
        if backend == "scripted":
            # Stateless and cheap, and its script belongs to the agent.
            script: list[dict[str, Any]] = [turn.model_dump() for turn in spec.script or []]
            return TimedProvider(build_provider(spec.model, self.settings, script), backend)
        provider = self._shared.get(backend)
        if provider is None:
            provider = TimedProvider(build_provider(spec.model, self.settings), backend)
            self._shared[backend] = provider
        return provider

    async def aclose(self) -> None:
        for provider in self._shared.values():
            await provider.aclose()
        self._shared.clear()


class TimedProvider:
    """Observes each call's latency under its backend's name (build_provider knows only a few)."""

    def __init__(self, provider: ModelProvider, backend: str) -> None:
        self.provider = provider
        self.backend = backend

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        ok = False
        try:
            response = await self.provider.complete(request)
            ok = True
            return response
        finally:
            MODEL_CALL_SECONDS.labels(self.backend, outcome(ok)).observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.provider.aclose()
