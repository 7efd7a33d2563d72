"""Durable step overhead with a model that answers instantly and no tool: loopd against DBOS and
LangGraph (PostgresSaver, durability="sync"), on one PostgreSQL, each step adding one small message.

    .venv/bin/python -m bench.step [--steps 100] [--trials 5]

loopd is measured on the brain's own code path: each step is one turn of `RunStepper.drive`'s loop
for a model call (`_over_limits`, then `_take(CALL_MODEL)`, which checks the lease, calls the model,
commits `model.response` through `StepCommitter` and the Journal, publishes it on the Redis bus and
refreshes the state from the log). A whole `BrainWorker` cannot be used here: without tools a run
finishes after one model turn, and tools need a sandbox. DBOS runs one `@DBOS.step` per step inside
one `@DBOS.workflow`; LangGraph runs one node per superstep with its checkpoint written before the next.
Systems take turns, trial by trial, so drift on the machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Protocol, TypedDict, TypeVar

from bench._support import Servers, machine, median, percentile, servers, table
from services.brain.budget import Budget
from services.brain.context import NextAction
from services.brain.dispatch import ToolDispatcher
from services.brain.lease_keeper import LeaseKeeper
from services.brain.models import ModelRequest, ModelResponse, Usage
from services.brain.providers import ProviderPool
from services.brain.stepper import RunStepper
from services.core import leases
from services.core import runs as run_store
from services.core.agents import AgentSpec, Limits
from services.core.artifacts import build_artifact_store
from services.core.bus import build_bus
from services.core.db.engine import create_engine
from services.core.db.migrate import upgrade_async
from services.core.journal import Journal
from services.core.settings import Settings

SMALL_MESSAGE = "ok"
T = TypeVar("T")


class StepDriver(Protocol):
    """One system under test: runs a conversation of one step per message, on its own database."""

    name: str
    database_url: str

    def run(self, texts: list[str]) -> list[float]:
        """Seconds per step."""
        ...

    def close(self) -> None: ...


@dataclass
class Script:
    """The messages of the current trial; every system's model or step answers from it by index."""

    texts: list[str] = field(default_factory=list)


class InstantModel:
    """A model provider that answers at once with the script's message for this turn."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def complete(self, request: ModelRequest) -> ModelResponse:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return ModelResponse(text=self.script.texts[turn], usage=Usage(10, 10))

    async def aclose(self) -> None:
        return None


class LoopdSteps:
    """The brain's per-step path on a fresh run; one event loop for the engine, the bus and every trial."""

    name = "loopd"

    def __init__(self, servers: Servers, database: str = "loopd") -> None:
        self.database_url = servers.database(database)
        bus_url = servers.redis.url if servers.redis else "local://"
        self.settings = Settings(
            database_url=self.database_url,
            bus_url=bus_url,
            artifacts_dir=servers.root / "artifacts",
            lease_seconds=600,
            tenant="bench",
        )
        self.script = Script()
        self._runner = asyncio.Runner()
        self._runner.run(self._open())

    async def _open(self) -> None:
        await upgrade_async(self.database_url)
        self.engine = create_engine(self.settings)
        self.bus = build_bus(self.settings.bus_url)
        self.journal = Journal(self.engine, self.bus)
        artifacts = build_artifact_store(self.settings)
        self.dispatcher = ToolDispatcher(self.settings, self.bus, artifacts, self.journal)

    def run(self, texts: list[str]) -> list[float]:
        """Seconds per step for one run of len(texts) steps."""
        self.script.texts = texts
        return self._runner.run(self._run(len(texts)))

    def breakdown(self, texts: list[str]) -> dict[str, list[float]]:
        """The same step in its parts, for the profile: lease check, model, commit and fold."""
        self.script.texts = texts
        return self._runner.run(self._breakdown(len(texts)))

    async def _start(self, steps: int) -> tuple[RunStepper, AgentSpec, Budget, datetime]:
        spec = AgentSpec(model="scripted", tools=[], limits=Limits(max_steps=steps + 1))
        async with self.engine.begin() as conn:
            row, _ = await run_store.create_run(
                conn,
                tenant="bench",
                spec=spec.model_dump(),
                agent_id=None,
                agent_version=None,
                user_input=SMALL_MESSAGE,
                metadata={},
            )
            fence = await leases.acquire(conn, row.id, "bench-brain", self.settings.lease_seconds)
        assert fence is not None
        keeper = LeaseKeeper(self.engine, row.id, fence, self.settings.lease_seconds, time.monotonic())
        stepper = RunStepper(
            self.settings, self.journal, self.dispatcher, ProviderPool(self.settings), keeper
        )
        inputs = await stepper._load_run()
        spec = AgentSpec.model_validate(inputs.agent_spec)
        await stepper._refresh()
        await stepper._commit(stepper.committer.start())
        budget = Budget.effective(spec, dict(inputs.budget or {}), stepper.state.budget_raises)
        return stepper, spec, budget, inputs.created_at

    async def _run(self, steps: int) -> list[float]:
        stepper, spec, budget, created_at = await self._start(steps)
        model = InstantModel(self.script)
        samples = []
        for _ in range(steps):
            # One turn of RunStepper.drive's loop for a model call: the budget check, then the step.
            started = time.perf_counter()
            if budget.reached(stepper.state, created_at) is not None:
                raise RuntimeError("the run reached a budget")
            await stepper._take(NextAction.CALL_MODEL, spec, model)
            samples.append(time.perf_counter() - started)
        assert stepper.state.model_calls == steps
        return samples

    async def _breakdown(self, steps: int) -> dict[str, list[float]]:
        stepper, spec, _, _ = await self._start(steps)
        model = InstantModel(self.script)
        parts: dict[str, list[float]] = {"lease check": [], "model": [], "commit and fold": []}

        async def timed(part: str, work: Callable[[], Awaitable[T]]) -> T:
            started = time.perf_counter()
            result = await work()
            parts[part].append(time.perf_counter() - started)
            return result

        async def commit(response: ModelResponse) -> None:
            snapshot = stepper.state.workspace_snapshot
            await stepper._commit(stepper.committer.model_response(spec.model, response, snapshot))

        for _ in range(steps):
            request = ModelRequest(
                model=spec.model, system=spec.system, messages=tuple(stepper.state.messages)
            )
            await timed("lease check", stepper.lease.ensure)
            response = await timed("model", partial(model.complete, request))
            await timed("commit and fold", partial(commit, response))
        return parts

    def close(self) -> None:
        async def shut() -> None:
            await self.dispatcher.aclose()
            await self.bus.aclose()
            await self.engine.dispose()

        self._runner.run(shut())
        self._runner.close()


class DbosSteps:
    """One `@DBOS.workflow` per run that calls one `@DBOS.step` per message, on its own database."""

    name = "DBOS"

    def __init__(self, servers: Servers, database: str = "bench_dbos") -> None:
        from dbos import DBOS

        self.database_url = servers.database(database)
        self.script = Script()
        self.samples: list[float] = []
        self._dbos = DBOS(
            config={
                "name": "loopd-bench",
                "system_database_url": self.database_url.replace("+psycopg", ""),
                "log_level": "WARNING",
            }
        )
        script, samples = self.script, self.samples

        # The step returns the message, so DBOS records it as the step's durable output.
        @DBOS.step()
        def add_message(index: int) -> str:
            return script.texts[index]

        @DBOS.workflow()
        def conversation(steps: int) -> int:
            for index in range(steps):
                started = time.perf_counter()
                add_message(index)
                samples.append(time.perf_counter() - started)
            return steps

        self._workflow = conversation
        DBOS.launch()

    def run(self, texts: list[str]) -> list[float]:
        self.script.texts = texts
        self.samples.clear()
        self._workflow(len(texts))
        return list(self.samples)

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=True)


class Conversation(TypedDict):
    messages: Annotated[list[str], operator.add]


class LangGraphSteps:
    """A one-node graph that loops, one message per superstep, checkpointed synchronously."""

    name = "LangGraph"

    def __init__(self, servers: Servers, database: str = "bench_langgraph") -> None:
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.graph import END, START, StateGraph

        self.database_url = servers.database(database)
        self.script = Script()
        script = self.script
        self._saver_context = PostgresSaver.from_conn_string(self.database_url.replace("+psycopg", ""))
        saver = self._saver_context.__enter__()
        saver.setup()

        def add_message(state: Conversation) -> dict[str, list[str]]:
            return {"messages": [script.texts[len(state["messages"])]]}

        def route(state: Conversation) -> str:
            return END if len(state["messages"]) >= len(script.texts) else "add_message"

        builder = StateGraph(Conversation)
        builder.add_node("add_message", add_message)
        builder.add_edge(START, "add_message")
        builder.add_conditional_edges("add_message", route)
        self._graph = builder.compile(checkpointer=saver)
        self._threads = 0

    def run(self, texts: list[str]) -> list[float]:
        """Seconds between consecutive node updates: one superstep plus its synchronous checkpoint.
        Step 1 also carries the checkpoint of the input."""
        self.script.texts = texts
        self._threads += 1
        config: Any = {
            "configurable": {"thread_id": f"bench-{self._threads}"},
            "recursion_limit": len(texts) + 5,
        }
        stamps = [time.perf_counter()]
        for _ in self._graph.stream({"messages": []}, config, durability="sync", stream_mode="updates"):
            stamps.append(time.perf_counter())
        return [b - a for a, b in itertools.pairwise(stamps)]

    def close(self) -> None:
        self._saver_context.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100, help="steps per run")
    parser.add_argument("--trials", type=int, default=5, help="runs per system")
    args = parser.parse_args()
    texts = [SMALL_MESSAGE] * args.steps
    with servers() as running:
        loopd = LoopdSteps(running)
        systems: list[StepDriver] = [loopd, DbosSteps(running), LangGraphSteps(running)]
        try:
            for system in systems:  # warm-up: connections, prepared plans, imports
                system.run(texts[:10])
            samples: dict[str, list[float]] = {s.name: [] for s in systems}
            for _ in range(args.trials):
                for system in systems:
                    samples[system.name].extend(system.run(texts))
            parts = loopd.breakdown(texts)
        finally:
            for system in reversed(systems):
                system.close()
    report(samples, parts, args)


def report(samples: dict[str, list[float]], parts: dict[str, list[float]], args: argparse.Namespace) -> None:
    ms = 1000.0
    loopd = median(samples["loopd"])
    rows = []
    for name, values in samples.items():
        rows.append(
            [
                name,
                len(values),
                median(values) * ms,
                percentile(values, 0.95) * ms,
                loopd / median(values),
            ]
        )
    print(f"machine: {machine()}")
    print(
        table(
            f"durable step, instant model, no tool: {args.trials} runs x {args.steps} steps per system",
            ["system", "steps", "median [ms]", "p95 [ms]", "loopd median / this median"],
            rows,
        )
    )
    part_rows = [[part, median(v) * ms, percentile(v, 0.95) * ms] for part, v in parts.items()]
    print(
        table(
            f"loopd step in its parts (one more run of {args.steps} steps)",
            ["part", "median [ms]", "p95 [ms]"],
            part_rows,
        )
    )


if __name__ == "__main__":
    main()
