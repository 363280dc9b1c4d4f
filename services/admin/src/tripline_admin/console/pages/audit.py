"""Console page for the audit log: filters and a table, newest first. Read-only."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tripline_admin.audit import service
from tripline_admin.audit.schemas import AuditFilters, AuditPage
from tripline_admin.console.paging import Pager, console_page_params
from tripline_admin.console.rendering import render
from tripline_admin.console.security import ConsoleUser
from tripline_common.web import PageParams, SessionDep

router = APIRouter(prefix="/audit")

AuditPageParams = Annotated[PageParams, Depends(console_page_params(service.AUDIT_SORT, AuditPage))]
Text = Annotated[str | None, Query(max_length=320)]


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@router.get("")
async def audit_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    page: AuditPageParams,
    action: Text = None,
    actor: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    request_id: Text = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    first, last = _day(since), _day(until)
    if first and last and last < first:
        first, last = last, first
    filters = AuditFilters(
        action=(action or "").strip()[:64] or None,
        actor=actor or None,
        target_type=(target_type or "").strip()[:64] or None,
        target_id=(target_id or "").strip()[:64] or None,
        request_id=(request_id or "").strip()[:64] or None,
        since=_midnight(first) if first else None,
        # The form's "to" day is inclusive.
        until=_midnight(last + timedelta(days=1)) if last else None,
    )
    result = await service.search_entries(session=session, filters=filters, page=page)
    return render(
        request,
        "audit.html",
        {
            "nav": "audit",
            "entries": result.rows,
            "pager": Pager.of(request, result),
            "form": {
                "action": action or "",
                "actor": actor or "",
                "target_type": target_type or "",
                "target_id": target_id or "",
                "request_id": request_id or "",
                "since": first.isoformat() if first else "",
                "until": last.isoformat() if last else "",
            },
        },
    )
