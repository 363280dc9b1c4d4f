"""${message}

Revision ID: ${up_revision}
Revises: ${comma(down_revision) or "(base)"}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
# "expand" runs in the pre-upgrade hook while the old code serves; "contract" (drop, rename,
# retype, NOT NULL, a constraint on existing rows) only after every pod runs the new code.
# A test reads the SQL and refuses a contract step declared expand (migrations/phases.py).
phase = "expand"
# Runs under the runner's lock and statement timeouts: to change them for this revision, call
# safety.set_timeouts(...) first, saying why. Indexes on big tables: create_index_concurrently.


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
