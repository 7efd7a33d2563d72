"""An agent version as the API shows it, and the agent's part of a session: the model, the toolset with
each tool's config, custom tools, and what loopd does not serve (MCP servers, skills, multiagent),
always empty."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from services.gateway.anthropic.responses import Body, Timestamp


class Effort(Body):
    type: Literal["low", "medium", "high", "xhigh", "max"]


class ModelConfig(Body):
    id: str
    effort: Effort | None = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = None


class PermissionPolicy(Body):
    type: Literal["always_allow", "always_ask"]


class ToolsetDefaultConfig(Body):
    enabled: bool
    permission_policy: PermissionPolicy


class ToolConfig(Body):
    type: Literal["bash", "read", "write", "edit", "glob", "grep", "web_fetch", "web_search"]
    name: Literal["bash", "read", "write", "edit", "glob", "grep", "web_fetch", "web_search"]
    enabled: bool
    permission_policy: PermissionPolicy


class Toolset(Body):
    type: Literal["agent_toolset_20260401"]
    default_config: ToolsetDefaultConfig
    configs: list[ToolConfig]


class CustomToolInputSchema(Body):
    # A JSON schema of the caller's: its keywords beyond these are theirs to choose.
    model_config = ConfigDict(extra="allow")

    type: Literal["object"]
    properties: dict[str, Any] | None = None
    required: list[str] | None = None


class CustomTool(Body):
    type: Literal["custom"]
    name: str
    description: str
    input_schema: CustomToolInputSchema


Tool = Annotated[Toolset | CustomTool, Field(discriminator="type")]


class ServiceAccount(Body):
    type: Literal["service_account"]


class McpServer(Body):
    type: Literal["url"]
    name: str
    url: str


class Skill(Body):
    type: Literal["anthropic", "custom"]
    skill_id: str
    version: str


class AgentExtras(Body):
    """loopd's own view of the version: its model id, its tools by loopd name, its limits."""

    model: str
    tools: list[str]
    limits: dict[str, Any] | None


class AgentConfig(Body):
    name: str
    description: str | None
    model: ModelConfig
    system: str | None
    tools: list[Tool]
    mcp_servers: list[McpServer]
    skills: list[Skill]
    multiagent: None
    execution_identity: ServiceAccount


class Agent(AgentConfig):
    type: Literal["agent"]
    id: str
    version: int
    metadata: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp
    archived_at: Timestamp | None
    x_loopd: AgentExtras


class SessionAgent(AgentConfig):
    """The agent version a session runs, as the session shows it."""

    type: Literal["agent"]
    id: str
    version: int


class AgentPage(Body):
    data: list[Agent]
    next_page: str | None
