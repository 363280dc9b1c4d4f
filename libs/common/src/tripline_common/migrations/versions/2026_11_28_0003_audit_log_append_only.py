"""The audit log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE of its rows.

No endpoint edits the audit log; this makes that hold for everything else that can reach the
database too (a bug, a script, a hand-typed statement). The one change let through is the
`ON DELETE SET NULL` of `actor_id` when the acting user's account is deleted: the entry keeps
who acted in `actor_label`, and nothing else about it may change.

A retention job, if one is ever wanted, must be a deliberate act by the table's owner:
`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only` in the same transaction.

Revision ID: 0003_audit_log_append_only
Revises: 0002_job_params
Create Date: 2026-11-28 09:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_audit_log_append_only"
down_revision: str | Sequence[str] | None = "0002_job_params"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
               AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
                RETURN NEW;  -- the actor's account was deleted (ON DELETE SET NULL)
            END IF;
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
