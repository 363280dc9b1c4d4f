"""Queue endpoints for operators: declarations only."""

from __future__ import annotations

from fastapi import APIRouter

from tripline_admin.queues.schemas import QueueStats
from tripline_admin.queues.service import queue_health
from tripline_common.web import RedisDep, SettingsDep

router = APIRouter(prefix="/queues", tags=["queues"])


@router.get(
    "",
    response_model=list[QueueStats],
    summary="Queue health",
    description="Depth, wait of the oldest due job and jobs in progress, for each ARQ queue.",
)
async def list_queues(redis: RedisDep, settings: SettingsDep) -> list[QueueStats]:
    return [await queue_health(redis=redis, queue_name=settings.arq_queue_name)]
