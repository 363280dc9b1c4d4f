"""The console's first page: counts, queue health, open alerts, recent failures, and charts of
recent activity (also served alone, for console.js to refresh them in place)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tripline_admin.activity import service as activity_service
from tripline_admin.activity.schemas import Activity
from tripline_admin.console.charts import Chart, bar_chart, line_chart
from tripline_admin.console.rendering import render
from tripline_admin.console.security import ConsoleUser
from tripline_admin.overview import service
from tripline_admin.queues.history import STEP_SECONDS, WINDOW_SECONDS
from tripline_admin.state import AdminSettingsDep
from tripline_common.web import RedisDep, SessionDep

router = APIRouter()

LIVE_SECONDS = 10
"""How often console.js reloads the charts of an open overview."""


def activity_charts(activity: Activity) -> list[Chart]:
    """The overview's four charts, in the order shown."""
    return [
        line_chart(
            "Telemetry events per second",
            "events/s",
            [
                ("accepted", "accepted", activity.accepted_per_second),
                ("processed", "processed", activity.processed_per_second),
            ],
        ),
        line_chart("Queue depth", "jobs", [("waiting", "queue", activity.queue_depth)]),
        bar_chart("Alerts per hour", "alerts", activity.alerts_per_hour),
    ]


async def _activity_context(
    session: SessionDep, redis: RedisDep, settings: AdminSettingsDep
) -> dict[str, Any]:
    data = await activity_service.activity(
        session=session,
        redis=redis,
        queue_name=settings.arq_queue_name,
        cache_seconds=settings.overview_cache_seconds,
    )
    return {
        "activity": data,
        "charts": activity_charts(data),
        "window_minutes": WINDOW_SECONDS // 60,
        "step_seconds": STEP_SECONDS,
        "live_seconds": LIVE_SECONDS,
    }


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
    charts = await _activity_context(session, redis, settings)
    return render(request, "overview.html", {"overview": data, "nav": "overview", **charts})


@router.get("/activity")
async def activity_fragment(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    redis: RedisDep,
    settings: AdminSettingsDep,
) -> Response:
    charts = await _activity_context(session, redis, settings)
    return render(request, "_activity.html", charts, fragment=True)
