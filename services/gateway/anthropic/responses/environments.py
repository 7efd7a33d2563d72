"""An environment as the API shows it: a `cloud` config of networking and packages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from services.gateway.anthropic.responses import Body, Open, Timestamp


class UnrestrictedNetwork(Open):
    type: Literal["unrestricted"]


class LimitedNetwork(Open):
    type: Literal["limited"]
    allowed_hosts: list[str]
    allow_mcp_servers: bool
    allow_package_managers: bool


class Packages(Open):
    type: Literal["packages"] | None = None
    apt: list[str]
    cargo: list[str]
    gem: list[str]
    go: list[str]
    npm: list[str]
    pip: list[str]


class CloudConfig(Open):
    type: Literal["cloud"]
    networking: Annotated[UnrestrictedNetwork | LimitedNetwork, Field(discriminator="type")]
    packages: Packages


class Environment(Open):
    type: Literal["environment"]
    id: str
    name: str
    description: str | None
    config: CloudConfig
    metadata: dict[str, str]
    scope: Literal["organization", "account"] | None
    created_at: Timestamp
    updated_at: Timestamp
    archived_at: Timestamp | None


class EnvironmentPage(Body):
    data: list[Environment]
    next_page: str | None


class EnvironmentDeleted(Body):
    type: Literal["environment_deleted"]
    id: str
