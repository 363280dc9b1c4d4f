"""What keeps a migration from stalling live traffic: lock and statement timeouts on every
revision, and indexes built concurrently, outside the transaction, with nothing invalid left.

The runner (`env.py`) sets `LOCK_TIMEOUT` and `STATEMENT_TIMEOUT` for the connection before the
first revision; each revision runs in a transaction of its own, so a revision that needs more
calls `set_timeouts(...)` at the top of its `upgrade()`, with a comment saying why, and its
setting ends with it (`SET LOCAL`). A migration that cannot get its lock in time fails and
leaves the database at the previous revision; the hook Job retries it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

LOCK_TIMEOUT = "5s"
"""How long a statement of a migration waits for a lock before it fails: an `ALTER TABLE`
waiting behind a long read would otherwise queue every later query on the table behind it."""
STATEMENT_TIMEOUT = "60s"
"""How long one statement of a migration may run: a backfill that needs longer says so."""


def session_timeouts_sql() -> list[str]:
    """The statements the runner sends first: the defaults above, for the whole run."""
    return [
        f"SET lock_timeout = '{LOCK_TIMEOUT}'",
        f"SET statement_timeout = '{STATEMENT_TIMEOUT}'",
    ]


def set_timeouts(*, lock: str | None = None, statement: str | None = None) -> None:
    """Override the runner's timeouts for the revision being run (its transaction only).
    Values are PostgreSQL durations (`'30s'`, `'10min'`); say why beside the call."""
    for name, value in (("lock_timeout", lock), ("statement_timeout", statement)):
        if value is not None:
            # `set_config(..., true)` is SET LOCAL with a bound value (SET takes no parameters).
            op.execute(
                sa.text("SELECT set_config(:name, :value, true)").bindparams(name=name, value=value)
            )


def create_index_concurrently(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    where: str | None = None,
    unique: bool = False,
    using: str | None = None,
) -> None:
    """`CREATE INDEX CONCURRENTLY` outside the revision's transaction: writes to `table` go on
    while it builds. `columns` may carry a direction or an operator class (`"raised_at DESC"`,
    `"email gin_trgm_ops"`); `using` names the access method (`"gin"`).

    A build that fails leaves PostgreSQL's INVALID index behind: it is dropped before the error
    is raised, and a rerun drops one left by a process that died, so the next attempt starts
    clean. Statement timeout: none for the build (it may run long by design); the lock timeout
    still bounds its waits."""
    columns_sql = ", ".join(columns)
    predicate = f" WHERE {where}" if where else ""
    method = f" USING {using}" if using else ""
    kind = "UNIQUE INDEX" if unique else "INDEX"
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {name}"
    with op.get_context().autocommit_block():
        if not op.get_context().as_sql and _invalid_index_exists(name):
            op.execute(drop)
        op.execute("SET statement_timeout = 0")
        try:
            op.execute(
                f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON {table}{method} "
                f"({columns_sql}){predicate}"
            )
        except Exception:
            op.execute(drop)
            raise
        finally:
            op.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")


def _invalid_index_exists(name: str) -> bool:
    found = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        )
        .scalar()
    )
    return bool(found)
