"""Teams: tenants, API keys, the audit log and per-run daily usage.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("quotas", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    # Tenants that already own rows become tenants in their own right.
    op.execute(
        "INSERT INTO tenants (id, name) SELECT DISTINCT tenant_id, tenant_id FROM"
        " (SELECT tenant_id FROM runs UNION SELECT tenant_id FROM agents) AS owners"
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("api_keys_tenant_created", "api_keys", ["tenant_id", "created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("key_id", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("object_type", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("audit_log_tenant_id", "audit_log", ["tenant_id", "id"])
    op.create_table(
        "usage",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("agent_id", sa.Text),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("tool_calls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sandbox_seconds", sa.Float, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("run_id", "day"),
    )
    op.create_index("usage_tenant_day", "usage", ["tenant_id", "day"])


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("tenants")
