"""The overview: counts across the system, queue health, open alerts and recent failures."""

from __future__ import annotations

from arq.connections import ArqRedis
from sqlalchemy import ColumnElement, ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_admin.jobs.service import recent_failures
from tripline_admin.overview.schemas import Counts, Overview, RecentAlert
from tripline_admin.queues.schemas import QueueStats
from tripline_common.data.models import (
    Alert,
    AlertStatus,
    AuthSession,
    BatchStatus,
    Device,
    Job,
    JobStatus,
    TelemetryBatch,
    Trip,
    TriplineModel,
    TripStatus,
    User,
    UserRole,
)
from tripline_common.messaging import queue_stats


def _count(model: type[TriplineModel], *conditions: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).select_from(model).where(*conditions).scalar_subquery()


async def system_counts(*, session: AsyncSession) -> Counts:
    """Every count of the overview, in one round trip."""
    now = func.now()
    row = (
        await session.execute(
            select(
                _count(User).label("users"),
                _count(User, col(User.is_active).is_(False)).label("users_disabled"),
                _count(User, col(User.role) != UserRole.USER).label("staff"),
                _count(
                    AuthSession,
                    col(AuthSession.revoked_at).is_(None),
                    col(AuthSession.expires_at) > now,
                ).label("sessions_live"),
                _count(Device, col(Device.revoked_at).is_(None)).label("devices_active"),
                _count(Device, col(Device.revoked_at).is_not(None)).label("devices_revoked"),
                _count(Trip, col(Trip.status) == TripStatus.ACTIVE).label("trips_active"),
                _count(Alert, col(Alert.status) == AlertStatus.OPEN).label("alerts_open"),
                _count(Job, col(Job.status) == JobStatus.QUEUED).label("jobs_queued"),
                _count(Job, col(Job.status) == JobStatus.RUNNING).label("jobs_running"),
                _count(Job, col(Job.status) == JobStatus.FAILED).label("jobs_failed"),
                _count(TelemetryBatch, col(TelemetryBatch.status) == BatchStatus.PENDING).label(
                    "batches_pending"
                ),
                _count(TelemetryBatch, col(TelemetryBatch.status) == BatchStatus.FAILED).label(
                    "batches_failed"
                ),
            )
        )
    ).one()
    return Counts.model_validate(dict(row._mapping))


async def open_alerts(*, session: AsyncSession, limit: int) -> list[RecentAlert]:
    """The latest open alerts, with their owner's email."""
    rows = await session.execute(
        select(Alert, col(User.email))
        .join(User, col(User.id) == col(Alert.owner_id))
        .where(col(Alert.status) == AlertStatus.OPEN)
        .order_by(col(Alert.raised_at).desc(), col(Alert.id))
        .limit(limit)
    )
    return [
        RecentAlert.model_validate({**alert.model_dump(), "owner_email": email})
        for alert, email in rows.all()
    ]


async def overview(*, session: AsyncSession, redis: ArqRedis, queue_name: str) -> Overview:
    """What the overview page and `GET /v1/overview` show."""
    return Overview(
        counts=await system_counts(session=session),
        queues=[QueueStats(**await queue_stats(redis, queue_name))],
        recent_alerts=await open_alerts(session=session, limit=8),
        recent_failures=await recent_failures(
            session=session, redis=redis, queue_name=queue_name, limit=8
        ),
    )
