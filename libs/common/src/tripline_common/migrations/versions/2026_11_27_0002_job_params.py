"""Jobs carry their inputs: `jobs.params`, so a job lost between Postgres and Redis can be re-run.

Revision ID: 0002_job_params
Revises: 0001_core_tables
Create Date: 2026-11-27 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_job_params"
down_revision: str | Sequence[str] | None = "0001_core_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "jobs",
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="Inputs of the job; the worker function reads them by the job's id.",
        ),
    )


def downgrade() -> None:
    op.drop_column("jobs", "params")
