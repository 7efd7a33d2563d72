"""One model provider per backend for the life of a brain, so every run shares its HTTP connection
pool instead of paying for a new client (and TLS context) at every wake-up."""

from __future__ import annotations

from typing import Any

from services.brain.models import ModelProvider, build_provider
from services.core.agents import AgentSpec
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
            return build_provider(spec.model, self.settings, script)
        provider = self._shared.get(backend)
        if provider is None:
            provider = build_provider(spec.model, self.settings)
            self._shared[backend] = provider
        return provider

    async def aclose(self) -> None:
        for provider in self._shared.values():
            await provider.aclose()
        self._shared.clear()
