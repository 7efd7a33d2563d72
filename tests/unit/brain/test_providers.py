"""The provider pool times every model call under its backend's name."""

from __future__ import annotations

from services.brain.models import Message, ModelRequest
from services.brain.providers import ProviderPool
from services.core.agents import AgentSpec
from services.core.metrics import REGISTRY
from services.core.settings import Settings


def observed(provider: str, outcome: str) -> float:
    labels = {"provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("loopd_brain_model_call_seconds_count", labels) or 0.0


async def test_each_model_call_is_observed_by_provider() -> None:
    before = observed("scripted", "ok")
    spec = AgentSpec(name="t", model="scripted", script=[{"text": "done"}])
    provider = ProviderPool(Settings()).for_agent(spec)
    request = ModelRequest(model="scripted", system="", messages=(Message(role="user", content="hi"),))

    response = await provider.complete(request)

    assert response.text == "done"
    assert observed("scripted", "ok") == before + 1
