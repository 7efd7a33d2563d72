"""The Managed Agents API's view: environments, archived agents and sessions, session titles.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("environments_tenant_created", "environments", ["tenant_id", "created_at"])
    op.add_column("agents", sa.Column("profile", JSONB))
    op.add_column("agents", sa.Column("archived_at", sa.DateTime(timezone=True)))
    op.add_column("runs", sa.Column("title", sa.Text))
    op.add_column("runs", sa.Column("environment_id", sa.Text))
    op.add_column("runs", sa.Column("archived_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    for column in ("archived_at", "environment_id", "title"):
        op.drop_column("runs", column)
    for column in ("archived_at", "profile"):
        op.drop_column("agents", column)
    op.drop_index("environments_tenant_created", "environments")
    op.drop_table("environments")
