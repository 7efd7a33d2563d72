"""Versioned environments and tenants' secrets: each environment's versions, the version a run keeps,
and secrets sealed at rest.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column("environments", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.create_table(
        "environment_versions",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("environment_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "environment_id", "version"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "environment_id"],
            ["environments.tenant_id", "environments.id"],
            ondelete="CASCADE",
        ),
    )
    # Every environment so far has no network (the only config the Managed Agents view took): the
    # default spec, `{}`.
    op.execute(
        "INSERT INTO environment_versions (tenant_id, environment_id, version, spec, created_at) "
        "SELECT tenant_id, id, 1, '{}'::jsonb, created_at FROM environments"
    )
    op.add_column("runs", sa.Column("environment_version", sa.Integer))
    op.create_table(
        "secrets",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    op.drop_column("runs", "environment_version")
    op.drop_table("environment_versions")
    op.drop_column("environments", "version")
