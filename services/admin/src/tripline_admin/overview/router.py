"""`/v1/overview`: the numbers an operator looks at first. Declarations only."""

from __future__ import annotations

from fastapi import APIRouter

from tripline_admin.overview import service
from tripline_admin.overview.schemas import COUNT_CAP, Overview
from tripline_admin.state import AdminSettingsDep
from tripline_common.web import RedisDep, SessionDep

router = APIRouter(prefix="/overview", tags=["overview"])


@router.get(
    "",
    response_model=Overview,
    summary="System overview",
    description="Counts (users, sessions, devices, trips, alerts, jobs, batches), queue "
    f"health, the latest open alerts and the latest failures. Counts stop at {COUNT_CAP} "
    f"(`at_least`) or, for users and devices past {COUNT_CAP}, are estimates (`estimated`); "
    "the answer is cached for OVERVIEW_CACHE_SECONDS (`as_of`).",
)
async def get_overview(
    session: SessionDep, redis: RedisDep, settings: AdminSettingsDep
) -> Overview:
    return await service.overview(
        session=session,
        redis=redis,
        queue_name=settings.arq_queue_name,
        cache_seconds=settings.overview_cache_seconds,
    )
