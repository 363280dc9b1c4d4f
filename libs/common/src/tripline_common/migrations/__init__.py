"""Database migrations (Alembic) of the Tripline schema, and the Python API to run them."""

from tripline_common.migrations.runner import (
    MigrationError,
    check,
    current_revision,
    database_url,
    downgrade,
    head_revision,
    upgrade,
    wait_for_head,
)

__all__ = [
    "MigrationError",
    "check",
    "current_revision",
    "database_url",
    "downgrade",
    "head_revision",
    "upgrade",
    "wait_for_head",
]
