"""The agent spec: which model, which system prompt, which tools, which limits.

Specs are immutable once stored: a change makes a new version, and a run keeps a copy of the
exact spec it started with.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.core.tools import BRAIN_TOOLS, DEFAULT_SANDBOX_TOOLS, SANDBOX_TOOLS

BUILTIN_TOOLS = tuple(str(tool) for tool in SANDBOX_TOOLS + BRAIN_TOOLS)
DEFAULT_TOOLS = [str(tool) for tool in DEFAULT_SANDBOX_TOOLS]

Permission = Literal["allow", "ask", "deny"]

# Bounds that keep every budget within what PostgreSQL and the brain's clock arithmetic can hold.
STEPS_MAX = 2**31 - 1
TOKENS_MAX = 2**63 - 1
USD_MAX = 1e12
SECONDS_MAX = 10 * 365 * 86_400.0
Tokens = Annotated[int, Field(ge=0, le=TOKENS_MAX)]


class Limits(BaseModel):
    """Budgets, checked before every model call; reaching one makes the run wait for a raise."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(50, ge=1, le=100_000)
    max_tokens: int | None = Field(None, ge=1, le=TOKENS_MAX)
    max_cost_usd: float | None = Field(None, gt=0, le=USD_MAX)
    # Named as in BudgetLimits; `timeout_seconds` is still read, as stored specs and older agent
    # files say.
    max_wall_time_seconds: float = Field(
        3600.0,
        gt=0,
        le=SECONDS_MAX,
        validation_alias=AliasChoices("max_wall_time_seconds", "timeout_seconds"),
        description="the run's maximum wall time",
    )
    tool_timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    workspace_bytes: int | None = Field(
        None,
        ge=16 * 1024**2,
        le=2**40,
        description="the size of the run's /workspace and its storage budget (default: the operator's); "
        "hands give at most their ceiling",
    )


class BudgetLimits(BaseModel):
    """The limits a run is started with or a person raises, by the names of `Limits`; those not given
    keep their value."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(None, ge=1, le=STEPS_MAX)
    max_tokens: int | None = Field(None, ge=1, le=TOKENS_MAX)
    max_cost_usd: float | None = Field(None, gt=0, le=USD_MAX)
    max_wall_time_seconds: float | None = Field(None, gt=0, le=SECONDS_MAX)


class ClientTool(BaseModel):
    """A tool the caller runs (with its own credentials): the run waits for its result over the API."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    description: str = Field("", max_length=10_000)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class RetryPolicy(BaseModel):
    """How a run rides out infrastructure failures (hands unreachable, a sandbox lost mid-call).

    Failures of the tool itself (non-zero exit, timeout) are never retried: they go to the model.
    """

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(6, ge=1, le=100)
    initial_backoff_seconds: float = Field(0.2, gt=0, le=60)
    max_backoff_seconds: float = Field(10.0, gt=0, le=600)


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ScriptedTurn(BaseModel):
    """One reply of the deterministic `scripted` model."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    sleep: float | None = Field(None, ge=0, le=3600)
    usage: dict[str, Tokens] | None = None


class EnvironmentRef(BaseModel):
    """An environment (docs/environments.md) by id, pinned to a version or (None) its latest when a run
    starts; a run keeps the version it started with."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    version: int | None = Field(None, ge=1, le=2**31 - 1)


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("agent", min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    system: str = Field("", max_length=200_000)
    tools: list[str] = Field(default_factory=lambda: list(DEFAULT_TOOLS))
    client_tools: list[ClientTool] = Field(default_factory=list)
    permissions: dict[str, Permission] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    script: list[ScriptedTurn] | None = None
    # Which input schema `bash` is offered with: loopd's own (None), or the Managed Agents toolset's.
    # Left out of stored specs when None, so that specs made natively keep the shape they always had.
    toolset: Literal["agent_toolset_20260401"] | None = Field(None, exclude_if=lambda value: value is None)
    # The sandbox its runs get (None: the default one, without network); left out of stored specs when
    # None, like `toolset`.
    environment: EnvironmentRef | None = Field(None, exclude_if=lambda value: value is None)

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = sorted(set(tools) - set(BUILTIN_TOOLS))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; built-in tools are {list(BUILTIN_TOOLS)}")
        return tools

    @model_validator(mode="after")
    def _consistent_tools(self) -> AgentSpec:
        client_names = [tool.name for tool in self.client_tools]
        clashes = sorted(set(client_names) & set(BUILTIN_TOOLS)) or sorted(
            {n for n in client_names if client_names.count(n) > 1}
        )
        if clashes:
            raise ValueError(f"client tool names must be unique and not built-in: {clashes}")
        unknown = sorted(set(self.permissions) - set(self.tools) - set(client_names))
        if unknown:
            raise ValueError(f"permissions name tools the agent does not have: {unknown}")
        return self

    def permission(self, tool: str) -> Permission:
        return self.permissions.get(tool, "allow")

    def client_tool(self, name: str) -> ClientTool | None:
        return next((tool for tool in self.client_tools if tool.name == name), None)

    @field_validator("model")
    @classmethod
    def _known_provider(cls, model: str) -> str:
        provider = model.partition("/")[0]
        if provider not in ("scripted", "openai", "anthropic"):
            raise ValueError("model must be 'scripted', 'openai/NAME' or 'anthropic/NAME'")
        return model
