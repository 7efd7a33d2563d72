"""The agent spec: which model, which system prompt, which tools, which limits.

Specs are immutable once stored: a change makes a new version, and a run keeps a copy of the
exact spec it started with.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

BUILTIN_TOOLS = ("bash", "read_file", "write_file", "edit_file", "list_files")


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(50, ge=1, le=100_000)
    timeout_seconds: float = Field(3600.0, gt=0)
    tool_timeout_seconds: float | None = Field(None, gt=0, le=86_400)


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
    usage: dict[str, int] | None = None


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("agent", min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    system: str = Field("", max_length=200_000)
    tools: list[str] = Field(default_factory=lambda: list(BUILTIN_TOOLS))
    limits: Limits = Field(default_factory=Limits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    script: list[ScriptedTurn] | None = None

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = sorted(set(tools) - set(BUILTIN_TOOLS))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; built-in tools are {list(BUILTIN_TOOLS)}")
        return tools

    @field_validator("model")
    @classmethod
    def _known_provider(cls, model: str) -> str:
        provider = model.partition("/")[0]
        if provider not in ("scripted", "openai", "anthropic"):
            raise ValueError("model must be 'scripted', 'openai/NAME' or 'anthropic/NAME'")
        return model
