"""The loopd schema as SQLAlchemy Core tables; Alembic migrations create and evolve it.

`events` is the append-only log, keyed by (run_id, seq). A `runs` row is only ever updated in the
same transaction as an append to that run's log, so it is a cache of the log, never a second truth.
Leases live in their own table because they coordinate brains, not describe runs; a lease also says
whether its run holds one of its tenant's sandboxes (core/sandbox_quota.py), a claim that ends with it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # What the Managed Agents API was told about this version beyond the spec (description, metadata,
    # the toolset's defaults), so that it reads back as it was written; None for agents made natively.
    Column("profile", JSONB),
    # Set on every version at once: archiving is the agent's, not one version's.
    Column("archived_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "id", "version"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("agent_id", Text),
    Column("agent_version", Integer),
    Column("agent_spec", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("input", Text, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("tool_calls", BigInteger, nullable=False, server_default="0"),
    Column("result", Text),
    Column("error", JSONB),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True)),
    Column("waiting_for", JSONB),
    Column("budget", JSONB, nullable=False, server_default="{}"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("parent_run_id", Text, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("forked_from", JSONB),
    Column("title", Text),
    Column("environment_id", Text),
    # The environment version the run was started in (runs of Managed Agents sessions made before
    # environments had versions have None: version 1).
    Column("environment_version", Integer),
    Column("archived_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "idempotency_key", name="runs_tenant_idempotency_key"),
    Index("runs_tenant_status_created", "tenant_id", "status", "created_at"),
    Index("runs_tenant_created", "tenant_id", "created_at"),
    Index("runs_parent", "parent_run_id"),
)

events = Table(
    "events",
    metadata,
    Column("run_id", Text, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("data", JSONB, nullable=False),
    PrimaryKeyConstraint("run_id", "seq"),
    Index("events_run_type", "run_id", "type"),
)

# The sandbox settings a run is started in. Name, description and metadata are edited in place; what the
# sandbox is (environment_versions) is versioned, `version` naming the latest, and a run keeps the
# version it started in. `config` is the latest version as the Managed Agents view shows it.
environments = Table(
    "environments",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("config", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("archived_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, server_default="1"),
    PrimaryKeyConstraint("tenant_id", "id"),
    Index("environments_tenant_created", "tenant_id", "created_at"),
)

# Immutable: one row per version, its spec as services.core.environment_spec.EnvironmentSpec dumps it.
environment_versions = Table(
    "environment_versions",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("environment_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "environment_id", "version"),
    ForeignKeyConstraint(
        ["tenant_id", "environment_id"], ["environments.tenant_id", "environments.id"], ondelete="CASCADE"
    ),
)

# A tenant's secrets, sealed (core/secret_box.py) before they reach the database; never read back as
# plaintext by the gateway or the brain.
secrets = Table(
    "secrets",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "name"),
)

run_leases = Table(
    "run_leases",
    metadata,
    Column("run_id", Text, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("sandbox", Boolean, nullable=False, server_default="false"),
    Index("run_leases_sandbox", "run_id", postgresql_where=text("sandbox")),
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("quotas", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Only a key's SHA-256 is kept: keys are 256 random bits, so a fast hash cannot be searched back.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_by", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Index("api_keys_tenant_created", "tenant_id", "created_at"),
)

# Append-only: rows are inserted, never updated or deleted.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("key_id", Text),
    Column("action", Text, nullable=False),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Index("audit_log_tenant_id", "tenant_id", "id"),
)

# What each run used on each day, added to in the same transaction as the append that used it.
# One row per run and day, so concurrent runs never contend for a row.
usage = Table(
    "usage",
    metadata,
    Column("run_id", Text, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("agent_id", Text),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("tool_calls", BigInteger, nullable=False, server_default="0"),
    Column("sandbox_seconds", Float, nullable=False, server_default="0"),
    PrimaryKeyConstraint("run_id", "day"),
    Index("usage_tenant_day", "tenant_id", "day"),
)
