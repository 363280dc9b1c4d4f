"""Reading the audit log (writing is `tripline_common.data.audit.record`; nothing edits it)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_admin.audit.schemas import AuditFilters
from tripline_admin.search import as_uuid, like_pattern
from tripline_common.data.models import AuditLogEntry
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

AUDIT_SORT = SortSpec(
    columns={"created_at": col(AuditLogEntry.created_at)},
    tiebreaker=col(AuditLogEntry.id),
    default="-created_at",
)
"""The audit log is read newest first by default, or oldest first."""


async def search_entries(
    *, session: AsyncSession, filters: AuditFilters, page: PageParams
) -> PageResult[AuditLogEntry]:
    """One page of audit entries matching `filters`."""
    statement = select(AuditLogEntry)
    if filters.action:
        if filters.action.endswith("."):
            statement = statement.where(
                col(AuditLogEntry.action).startswith(filters.action, autoescape=True)
            )
        else:
            statement = statement.where(col(AuditLogEntry.action) == filters.action)
    if filters.actor and filters.actor.strip():
        text = filters.actor.strip()
        actor_id = as_uuid(text)
        if actor_id is not None:
            statement = statement.where(col(AuditLogEntry.actor_id) == actor_id)
        else:
            statement = statement.where(
                col(AuditLogEntry.actor_label).ilike(like_pattern(text), escape="\\")
            )
    if filters.target_type:
        statement = statement.where(col(AuditLogEntry.target_type) == filters.target_type)
    if filters.target_id:
        statement = statement.where(col(AuditLogEntry.target_id) == filters.target_id)
    if filters.request_id:
        statement = statement.where(col(AuditLogEntry.request_id) == filters.request_id)
    if filters.since is not None:
        statement = statement.where(col(AuditLogEntry.created_at) >= filters.since)
    if filters.until is not None:
        statement = statement.where(col(AuditLogEntry.created_at) < filters.until)
    return await fetch_page(session, statement, page, AUDIT_SORT)


async def entries_about(
    *, session: AsyncSession, target_type: str, target_id: str, limit: int
) -> list[AuditLogEntry]:
    """The latest entries about one object (a user's history), newest first."""
    rows = await session.scalars(
        select(AuditLogEntry)
        .where(
            col(AuditLogEntry.target_type) == target_type,
            col(AuditLogEntry.target_id) == target_id,
        )
        .order_by(col(AuditLogEntry.created_at).desc(), col(AuditLogEntry.id).desc())
        .limit(limit)
    )
    return list(rows)
