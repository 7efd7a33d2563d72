"""Sandbox claims: a run's lease says whether its run holds one of its tenant's sandboxes.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run_leases", sa.Column("sandbox", sa.Boolean, nullable=False, server_default="false"))
    # Counting a tenant's claims reads only the leases that hold one, not every lease ever taken.
    op.create_index("run_leases_sandbox", "run_leases", ["run_id"], postgresql_where=sa.text("sandbox"))


def downgrade() -> None:
    op.drop_index("run_leases_sandbox", "run_leases")
    op.drop_column("run_leases", "sandbox")
