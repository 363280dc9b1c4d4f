"""The console's first page: counts, queue health, open alerts, recent failures."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tripline_admin.console.rendering import render
from tripline_admin.console.security import ConsoleUser
from tripline_admin.overview import service
from tripline_admin.state import AdminSettingsDep
from tripline_common.web import RedisDep, SessionDep

router = APIRouter()


@router.get("/")
async def overview_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    redis: RedisDep,
    settings: AdminSettingsDep,
) -> Response:
    data = await service.overview(
        session=session,
        redis=redis,
        queue_name=settings.arq_queue_name,
        cache_seconds=settings.overview_cache_seconds,
    )
    return render(request, "overview.html", {"overview": data, "nav": "overview"})
