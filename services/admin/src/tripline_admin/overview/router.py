"""`/v1/overview`: the numbers an operator looks at first. Declarations only."""

from __future__ import annotations

from fastapi import APIRouter

from tripline_admin.overview import service
from tripline_admin.overview.schemas import Overview
from tripline_common.web import RedisDep, SessionDep, SettingsDep

router = APIRouter(prefix="/overview", tags=["overview"])


@router.get(
    "",
    response_model=Overview,
    summary="System overview",
    description="Counts (users, sessions, devices, trips, alerts, jobs, batches), queue "
    "health, the latest open alerts and the latest failures.",
)
async def get_overview(session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Overview:
    return await service.overview(session=session, redis=redis, queue_name=settings.arq_queue_name)
