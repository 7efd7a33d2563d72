"""Waiting runs, budgets, forks and sub-agents: the run-row columns they need.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("waiting_for", JSONB))
    op.add_column("runs", sa.Column("budget", JSONB, nullable=False, server_default="{}"))
    op.add_column("runs", sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("parent_run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="SET NULL")))
    op.add_column("runs", sa.Column("forked_from", JSONB))
    op.create_index("runs_parent", "runs", ["parent_run_id"])


def downgrade() -> None:
    op.drop_index("runs_parent", "runs")
    for column in ("forked_from", "parent_run_id", "cost_usd", "budget", "waiting_for"):
        op.drop_column("runs", column)
