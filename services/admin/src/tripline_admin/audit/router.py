"""`/v1/audit-log`: read the audit log. There is deliberately no route that writes, edits or
deletes entries; they are written by the actions themselves (`tripline_common.data.audit`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tripline_admin.access import INVALID_LIST_QUERY
from tripline_admin.audit import service
from tripline_admin.audit.schemas import AuditFilters, AuditPage
from tripline_common.web import PageParams, SessionDep, page_params

router = APIRouter(prefix="/audit-log", tags=["audit"])

AuditPageParams = Annotated[PageParams, Depends(page_params(service.AUDIT_SORT, AuditPage))]


@router.get(
    "",
    response_model=AuditPage,
    summary="Read the audit log",
    description="Every operator action (who, what, target, when, request ID, source address), "
    "newest first; filter by action, actor, target, request ID and time. Read-only: the "
    "database refuses changes to entries.",
    responses=INVALID_LIST_QUERY,
)
async def read_audit_log(
    session: SessionDep, filters: Annotated[AuditFilters, Query()], page: AuditPageParams
) -> AuditPage:
    result = await service.search_entries(session=session, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]
