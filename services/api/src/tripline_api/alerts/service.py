"""Alerts: list, read and handle (acknowledge, resolve) a user's alerts. Nothing here knows
about HTTP.

Every query is filtered by owner, so another user's alert is indistinguishable from a missing
one (the caller answers 404 for both). Handling is idempotent: acknowledging an acknowledged
alert or resolving a resolved one changes nothing and succeeds; the only refused move is
acknowledging a resolved alert (409)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_api.alerts.schemas import AlertFilters
from tripline_common.data.models import Alert, AlertStatus
from tripline_common.platform import AppError, ConflictError, NotFoundError
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

ALERT_SORT = SortSpec(
    columns={
        "raised_at": col(Alert.raised_at),
        "rule": col(Alert.rule),
        "status": col(Alert.status),
    },
    tiebreaker=col(Alert.id),
    default="-raised_at",
)
"""What alert lists may be sorted on (NOT NULL columns only: keyset paging needs them)."""


@dataclasses.dataclass(frozen=True)
class AlertOutcome:
    """The result of one ID of a bulk acknowledge: the alert, or why it was refused."""

    alert_id: uuid.UUID
    alert: Alert | None
    error: AppError | None


def alert_not_found() -> NotFoundError:
    return NotFoundError("Alert not found.", code="alert_not_found")


async def list_alerts(
    *, session: AsyncSession, owner_id: uuid.UUID, filters: AlertFilters, page: PageParams
) -> PageResult[Alert]:
    """One page of the owner's alerts, filtered and sorted."""
    statement = select(Alert).where(col(Alert.owner_id) == owner_id)
    if filters.status:
        statement = statement.where(col(Alert.status).in_(filters.status))
    if filters.rule:
        statement = statement.where(col(Alert.rule).in_(filters.rule))
    if filters.trip_id is not None:
        statement = statement.where(col(Alert.trip_id) == filters.trip_id)
    if filters.raised_from is not None:
        statement = statement.where(col(Alert.raised_at) >= filters.raised_from)
    if filters.raised_to is not None:
        statement = statement.where(col(Alert.raised_at) < filters.raised_to)
    return await fetch_page(session, statement, page, ALERT_SORT)


async def get_alert(*, session: AsyncSession, owner_id: uuid.UUID, alert_id: uuid.UUID) -> Alert:
    """The owner's alert, or 404."""
    alert = await session.scalar(
        select(Alert).where(col(Alert.id) == alert_id, col(Alert.owner_id) == owner_id)
    )
    if alert is None:
        raise alert_not_found()
    return alert


async def _locked(
    session: AsyncSession, owner_id: uuid.UUID, alert_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Alert]:
    # Row locks (in ID order, so two bulk requests cannot deadlock) make concurrent moves of
    # one alert apply one after another.
    rows = await session.scalars(
        select(Alert)
        .where(col(Alert.id).in_(set(alert_ids)), col(Alert.owner_id) == owner_id)
        .order_by(col(Alert.id))
        .with_for_update()
    )
    return {alert.id: alert for alert in rows}


def _acknowledge(alert: Alert, now: datetime) -> None:
    if alert.status == AlertStatus.RESOLVED:
        raise ConflictError(
            "The alert is already resolved; it cannot be acknowledged.",
            code="invalid_alert_transition",
            details={"status": alert.status.value},
        )
    if alert.status == AlertStatus.OPEN:
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = now


async def acknowledge_alert(
    *, session: AsyncSession, owner_id: uuid.UUID, alert_id: uuid.UUID
) -> Alert:
    """open -> acknowledged; an acknowledged alert stays as it is; a resolved one is a 409."""
    alert = (await _locked(session, owner_id, [alert_id])).get(alert_id)
    if alert is None:
        raise alert_not_found()
    _acknowledge(alert, datetime.now(UTC))
    await session.flush()
    return alert


async def resolve_alert(
    *, session: AsyncSession, owner_id: uuid.UUID, alert_id: uuid.UUID
) -> Alert:
    """open or acknowledged -> resolved; a resolved alert stays as it is."""
    alert = (await _locked(session, owner_id, [alert_id])).get(alert_id)
    if alert is None:
        raise alert_not_found()
    if alert.status != AlertStatus.RESOLVED:
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = datetime.now(UTC)
    await session.flush()
    return alert


async def acknowledge_alerts(
    *, session: AsyncSession, owner_id: uuid.UUID, alert_ids: Sequence[uuid.UUID]
) -> list[AlertOutcome]:
    """Acknowledge each ID on its own: one outcome per ID, in order (a repeated ID is simply
    acknowledged again, which changes nothing)."""
    alerts = await _locked(session, owner_id, alert_ids)
    now = datetime.now(UTC)
    outcomes: list[AlertOutcome] = []
    for alert_id in alert_ids:
        alert = alerts.get(alert_id)
        try:
            if alert is None:
                raise alert_not_found()
            _acknowledge(alert, now)
        except AppError as error:
            outcomes.append(AlertOutcome(alert_id, None, error))
        else:
            outcomes.append(AlertOutcome(alert_id, alert, None))
    await session.flush()
    return outcomes
