"""Tool calls are observed by tool name; a name the model made up does not become a label."""

from __future__ import annotations

from pathlib import Path

from services.brain.context import RunState
from services.brain.dispatch import ToolDispatcher
from services.brain.models import ToolCall
from services.core.agents import AgentSpec
from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.bus import build_bus
from services.core.db.engine import create_engine
from services.core.journal import Journal
from services.core.metrics import REGISTRY
from services.core.settings import Settings


def observed(tool: str, outcome: str) -> float:
    labels = {"tool": tool, "outcome": outcome}
    return REGISTRY.get_sample_value("loopd_brain_tool_call_seconds_count", labels) or 0.0


async def test_a_refused_call_is_observed_as_an_error_of_an_unknown_tool(tmp_path: Path) -> None:
    settings = Settings(bus_url="local://")
    bus = build_bus(settings.bus_url)
    engine = create_engine(settings)  # never connects: a refused call reaches no database
    dispatcher = ToolDispatcher(settings, bus, FilesystemArtifactStore(tmp_path), Journal(engine, bus))
    spec = AgentSpec(name="t", model="scripted")
    before = observed("unknown", "error"), observed("bash", "error")
    try:
        for name, arguments in (("made_up_tool", {}), ("bash", {"command": 7})):
            outcome = await dispatcher.run(RunState(run_id="run_x"), ToolCall("c1", name, arguments), spec)
            assert outcome.result["ok"] is False
    finally:
        await dispatcher.aclose()
        await bus.aclose()
        await engine.dispose()
    assert (observed("unknown", "error"), observed("bash", "error")) == (before[0] + 1, before[1] + 1)
    assert (
        REGISTRY.get_sample_value(
            "loopd_brain_tool_call_seconds_count", {"tool": "made_up_tool", "outcome": "error"}
        )
        is None
    )
