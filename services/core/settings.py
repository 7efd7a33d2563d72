"""The one typed place where loopd reads its configuration (environment variables prefixed LOOPD_)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelPrice(BaseModel):
    """US dollars per million tokens, for cost budgets."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class Ceilings(BaseModel):
    """A tenant's hard limits on capacity: no agent spec, run override or budget raise goes past them."""

    model_config = ConfigDict(extra="forbid")

    tool_timeout_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="longest a tool call runs"
    )
    run_wall_time_seconds: float = Field(
        default=86_400.0, gt=0, description="longest a run lives, from its creation; then it fails"
    )
    live_sandboxes: int = Field(
        default=64, ge=1, description="sandboxes the tenant's runs hold at once on one hands worker"
    )
    slot_share: float = Field(
        default=1.0, gt=0, le=1, description="share of a hands worker's slots the tenant's calls hold at once"
    )
    # What an environment may ask of a sandbox (docs/environments.md); over one is refused, never cut.
    sandbox_cpus: float = Field(default=4.0, gt=0, description="most CPUs an environment gives a sandbox")
    sandbox_memory: ByteSize = Field(
        default=ByteSize(8 * 1024**3),
        ge=16 * 1024**2,
        description="most memory an environment gives, e.g. 8GiB",
    )
    sandbox_pids: int = Field(default=4096, ge=16, description="most processes an environment allows")

    def merged(self, overrides: dict[str, Any]) -> Ceilings:
        return Ceilings.model_validate({**self.model_dump(), **overrides})


class Settings(BaseSettings):
    """Every knob of every loopd process; each process parses it once and passes it down."""

    # Errors name the setting, never its value: values include keys, secrets and database passwords.
    model_config = SettingsConfigDict(
        env_prefix="LOOPD_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    tenant: str = Field(default="default", description="the root tenant: its admins manage the other tenants")
    admin_key: SecretStr | None = Field(
        default=None,
        description="an admin key of the root tenant, stored (hashed) at start if missing; the local "
        "stack makes one in data_dir when unset",
    )
    data_dir: Path = Path(".loopd")
    config: Path | None = Field(
        default=None,
        description="the `loopd` CLI's config file, where `up` stores the local stack's admin key for its "
        "URL (default: the CLI's own, $XDG_CONFIG_HOME/loopd/config.json or ~/.config/loopd/config.json)",
    )
    stack_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="names this stack's sandboxes on a shared engine (default: made once in data_dir)",
    )
    hands_secret: SecretStr | None = Field(
        default=None, description="brains present it to hands (default: made once in data_dir, mode 0600)"
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys (urlsafe base64, comma-separated, newest first) sealing tenants' secrets: "
        "gateways seal with the first, hands open with any; default: made once in data_dir, mode 0600",
    )

    # Storage and transport.
    database_url: str = "postgresql+psycopg://loopd:loopd@127.0.0.1:5432/loopd"
    database_pool_size: int = Field(
        default=10, ge=1, description="connections per process, and as many again in bursts"
    )
    migrate_on_start: bool = Field(
        default=True,
        description="gateways and brains migrate the database on start; off: run `loopd-server migrate` once",
    )
    bus_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="redis://... or local:// (one process only)"
    )
    bus_max_subscriptions: int = Field(
        default=10_000,
        ge=1,
        description="live subscriptions (open event streams) one process holds at once, each a Redis "
        "connection of a pool apart from its commands'",
    )
    artifacts_dir: Path = Field(
        default=Path(".loopd/artifacts"),
        description="the blobs, snapshots and call ledger on a filesystem every hands worker shares; "
        "unused with artifacts_url",
    )
    artifacts_url: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/]+)*/?$",
        description="s3://BUCKET/PREFIX: the blobs, snapshots and call ledger in an object store instead, "
        "so hands workers need no shared disk",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="an S3-compatible server, e.g. http://minio:9000 (default: AWS's own)"
    )
    s3_region: str | None = Field(default=None, description="the bucket's region (default: the SDK's)")
    s3_access_key_id: SecretStr | None = Field(
        default=None,
        description="with s3_secret_access_key; both unset: the SDK's own chain (a pod or instance role)",
    )
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="path: http://host/BUCKET/key, which most self-hosted servers want"
    )
    inline_output_limit: int = Field(
        default=64 * 1024, description="tool output above this goes to the artifact store"
    )
    artifacts_gc_interval_seconds: float = Field(
        default=3600.0, gt=0, description="how often a brain removes blobs nothing references"
    )
    artifacts_gc_grace_seconds: float = Field(
        default=6 * 3600.0,
        ge=60,
        description="a blob written or used this recently is kept even when nothing references it yet",
    )

    # Gateway.
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    # Requests per API key, as the limits library writes them ("600/minute", "10/second;600/minute":
    # every part holds); empty turns a bucket off. The defaults match what hosted agent platforms
    # allow (600 reads and 60 creates a minute), so clients written for those fit unchanged, and are
    # far above what people and CI scripts send. A stream (SSE) is one read for its whole life.
    rate_limit_reads: str = Field(
        default="600/minute", description="GET requests per API key; empty: unlimited"
    )
    rate_limit_writes: str = Field(
        default="60/minute",
        description="POST, PUT, PATCH and DELETE requests per API key (runs, messages, approvals, "
        "answers, keys...); empty: unlimited",
    )

    # Metrics: the gateway serves them on /metrics; the brain and hands each on a port of their own.
    metrics_enabled: bool = Field(default=True, description="false: the brain and hands open no metrics port")
    metrics_host: str = Field(default="127.0.0.1", description="where the brain and hands serve /metrics")
    brain_metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port (logged)")
    hands_metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port (logged)")

    # Brain.
    brain_id: str | None = None
    brain_concurrency: int = 16
    brain_commit_latency_target_ms: float = Field(
        default=20.0,
        gt=0,
        description="a brain holds fewer runs while its commits take longer than this (adaptive limit)",
    )
    brain_state_cache_size: int = Field(default=10_000, ge=0, description="run states a brain keeps folded")
    lease_seconds: float = 15.0
    wake_visibility_seconds: float = 30.0
    sweep_interval_seconds: float = 5.0
    quota_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how old a brain's view of a tenant's monthly ceilings and month-to-date usage may be",
    )
    hands_wait_seconds: float = 60.0
    sandbox_quota_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        description="a tool call waits this long for one of its tenant's max_sandboxes, then its result "
        "says the call did not run",
    )

    # Hands.
    hands_id: str | None = None
    hands_listen: str = "127.0.0.1:0"
    hands_advertise_host: str = "127.0.0.1"
    hands_slots: int = 8
    hands_stop_seconds: float = Field(
        default=150.0,
        gt=10,
        description="from SIGTERM to exit: calls in flight may finish until the last 10s, then are "
        "handed back; a pod's terminationGracePeriodSeconds must be this",
    )
    hands_heartbeat_seconds: float = 2.0
    hands_ttl_seconds: float = 6.0
    sandbox_image: str = "loopd-sandbox:latest"
    sandbox_memory: str = "512m"
    sandbox_cpus: float = 1.0
    sandbox_pids: int = 256
    sandbox_idle_seconds: float = 300.0
    sandbox_user: str = Field(
        default="64000:64000",
        pattern=r"^[1-9][0-9]*:[1-9][0-9]*$",
        description="uid:gid in sandboxes, far from host accounts; the image must be built for it",
    )
    tool_timeout_seconds: float = 120.0
    tool_output_cap: int = 1024 * 1024
    sandbox_tmp_size: str = Field(default="256m", description="each sandbox's /tmp (uses its memory)")
    sandbox_docker_host: str = Field(default="unix:///var/run/docker.sock", description="Docker Engine API")
    sandbox_runtime: Literal["runc", "runsc"] = Field(
        default="runc",
        description="the engine's runtime for sandboxes: runc, or runsc (gVisor: a user-space kernel "
        "between tools and the host; the engine must have it registered, see docs/security.md)",
    )
    hands_max_sandboxes: int = Field(
        default=32,
        ge=1,
        description="sandboxes one hands worker keeps for runs; past it, the least recently used idle go",
    )
    hands_run_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of a worker's slots a run and its sub-agents hold at once while others may wait",
    )
    snapshot_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="time a workspace restore or snapshot may take, apart from the call's own timeout",
    )
    hands_orphan_grace_seconds: float = Field(
        default=120.0,
        gt=0,
        description="sandboxes of a hands worker missing from the registry this long are removed",
    )
    hands_warm_pool: int = Field(
        default=2, ge=0, description="started sandboxes each hands worker keeps ready for new runs"
    )
    sandbox_runtime_dir: Path | None = Field(
        default=None,
        description="host folder for the sandboxes' executor sockets (default /run/loopd-hands or a tempdir)",
    )
    sandbox_workspace_storage: Literal["auto", "loop", "volume"] = Field(
        default="auto",
        description="loop: a filesystem image per sandbox, so its size is enforced (hands must be root "
        "beside the engine); volume: an engine volume, unbounded; auto: loop where it can work",
    )
    sandbox_workspace_dir: Path | None = Field(
        default=None, description="host folder of the workspace images (default data_dir/workspaces)"
    )
    sandbox_workspace_size: ByteSize = Field(
        default=ByteSize(1024**3), ge=16 * 1024**2, description="each sandbox's /workspace, e.g. 1GiB"
    )
    sandbox_workspace_max_size: ByteSize = Field(
        default=ByteSize(16 * 1024**3),
        ge=16 * 1024**2,
        description="the most an agent's limits.workspace_bytes gets (larger asks get this)",
    )
    # The egress proxy (services/hands/egress/): started by each hands worker for sandboxes whose
    # profile allows a network.
    egress_python: Path | None = Field(
        default=None,
        description="the egress proxy's interpreter, a venv of deploy/egress/requirements.lock "
        "(default .venv-egress/bin/python beside loopd's source)",
    )
    egress_ca_cert: Path | None = Field(
        default=None,
        description="PEM certificate of the CA the proxy intercepts TLS with; sandboxes trust it "
        "(default: made once in data_dir with its key)",
    )
    egress_ca_key: Path | None = Field(
        default=None, description="PEM private key of egress_ca_cert; only hands read it"
    )
    egress_nameservers: list[str] = Field(
        default_factory=list,
        description='JSON list of "address[:port]" the proxy resolves names with (default: the system\'s)',
    )
    egress_reachable_networks: list[str] = Field(
        default_factory=list,
        description="JSON list of private networks (CIDR) sandboxes may reach through the proxy; "
        "public addresses only by default",
    )
    egress_upstream_ca: Path | None = Field(
        default=None,
        description="PEM bundle the proxy verifies real hosts' certificates with (default: the system's)",
    )
    snapshot_file_max_size: ByteSize = Field(
        default=ByteSize(4 * 1024**3),
        ge=1,
        description="a workspace file larger than this (sparse ones count their full size) fails the "
        "snapshot as a tool error",
    )

    # Capacity: every tenant's ceilings, and the tenants whose ceilings differ.
    ceilings: Ceilings = Field(
        default_factory=Ceilings, description='JSON: {"tool_timeout_seconds": 600, ...}'
    )
    tenant_ceilings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='JSON: {"TENANT": {"tool_timeout_seconds": 60}}; what it does not name is as in ceilings',
    )

    # Environments' networks (docs/environments.md): what their egress may reach.
    egress_open_allowed: bool = Field(
        default=False, description="environments may ask for an open network (any public host)"
    )
    egress_package_registries: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON: {"NAME": ["HOST", "*.HOST"]}: the package registries an environment may name, '
        "and the host patterns each one allows",
    )

    # People in the loop and sub-agents.
    max_agent_depth: int = 3
    max_children: int = 8
    ask_user_schema_max_bytes: int = Field(
        default=16 * 1024, ge=64, description="largest answer schema an ask_user call may give (JSON bytes)"
    )
    ask_user_schema_max_depth: int = Field(
        default=32, ge=2, description="deepest nesting of objects and arrays in an ask_user schema"
    )
    ask_user_validate_seconds: float = Field(
        default=2.0, gt=0, description="time an answer may take to check against its schema (else a 422)"
    )

    # Models.
    model: str | None = Field(default=None, description="overrides an agent's model, e.g. openai/gpt-4o-mini")
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    model_timeout_seconds: float = 120.0
    model_max_connections: int = Field(default=1000, ge=1, description="concurrent model calls per brain")
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='JSON: {"openai/gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}',
    )

    @field_validator("rate_limit_reads", "rate_limit_writes")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        value = value.strip()
        if value:
            parse_many(value)  # its ValueError names what it could not read
        return value

    @field_validator("admin_key")
    @classmethod
    def _key_shaped(cls, value: SecretStr | None) -> SecretStr | None:
        """Stripped, as a key on a request is (one read from a file often ends in a newline), and of
        the shape the gateway looks up (services/core/keys.py), or it would refuse it on every request."""
        if value is None:
            return None
        key = value.get_secret_value().strip()
        if not (key.startswith("lk_") and 16 <= len(key) <= 128 and key.isascii() and key.isprintable()):
            raise ValueError("must be a loopd API key: lk_ and 13 to 125 more printable ASCII characters")
        if " " in key:
            raise ValueError("must be a loopd API key, without spaces")
        return SecretStr(key)

    @model_validator(mode="after")
    def _s3_key_pair(self) -> Settings:
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("s3_access_key_id and s3_secret_access_key are set together or not at all")
        return self

    @field_validator("egress_reachable_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_network(item.strip(), strict=False)) for item in value]

    @model_validator(mode="after")
    def _egress_ca_pair(self) -> Settings:
        if (self.egress_ca_cert is None) != (self.egress_ca_key is None):
            raise ValueError("egress_ca_cert and egress_ca_key are set together or not at all")
        return self

    @model_validator(mode="after")
    def _valid_tenant_ceilings(self) -> Settings:
        for overrides in self.tenant_ceilings.values():
            self.ceilings.merged(overrides)
        return self

    def ceilings_for(self, tenant: str) -> Ceilings:
        """The ceilings of a run's tenant."""
        overrides = self.tenant_ceilings.get(tenant)
        return self.ceilings.merged(overrides) if overrides else self.ceilings

    @property
    def artifacts_path(self) -> Path:
        return self.artifacts_dir.resolve()

    @property
    def workspace_images_path(self) -> Path:
        return (self.sandbox_workspace_dir or self.data_dir / "workspaces").resolve()
