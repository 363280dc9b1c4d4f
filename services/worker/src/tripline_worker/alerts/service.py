"""Raising alerts: insert once (by dedupe key), create their webhook deliveries, publish them.

Inside the caller's transaction, `raise_alerts` inserts the drafts (of one trip or of many) in
one statement with `ON CONFLICT (dedupe_key) DO NOTHING`, creates in one more statement a
pending `webhook_deliveries` row per active endpoint of its owner for each alert that is new,
and defers one `deliver_webhook` job per delivery until commit. After commit the caller
publishes the new alerts (`publish_alerts`). A crash between commit and publish loses only the
live notification: the alert is stored, and its deliveries are pending rows the delivery
sweeper re-enqueues.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data.models import ALERT_EVENT_COLUMNS, Alert
from tripline_common.messaging import (
    DELIVER_WEBHOOK,
    REQUEST_ID_KWARG,
    AlertEvent,
    JobQueue,
    publish_alert,
)
from tripline_worker.alerts.rules import AlertDraft

log = structlog.get_logger("tripline.worker.alerts")

# One statement for any number of alerts (SQLAlchemy sends them as one multi-row INSERT); it
# returns only the rows inserted, so only new alerts go on to be delivered and published.
_INSERT_ALERTS = (
    pg_insert(Alert)
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(*ALERT_EVENT_COLUMNS)
)

_CREATE_DELIVERIES = text(
    """
    INSERT INTO webhook_deliveries (endpoint_id, alert_id, request_id)
    SELECT endpoint.id, alert.id, :request_id
    FROM unnest(CAST(:alert_ids AS uuid[]), CAST(:owner_ids AS uuid[])) AS alert(id, owner_id)
    JOIN webhook_endpoints AS endpoint
      ON endpoint.owner_id = alert.owner_id AND endpoint.is_active
    ON CONFLICT (endpoint_id, alert_id) DO NOTHING
    RETURNING id
    """
)


@dataclass(frozen=True)
class AlertTarget:
    """The trip an alert is about, with its owner and the device that reported it."""

    owner_id: uuid.UUID
    trip_id: uuid.UUID
    device_id: uuid.UUID | None


async def raise_alerts(
    *,
    session: AsyncSession,
    queue: JobQueue,
    drafts: Sequence[tuple[AlertTarget, AlertDraft]],
    request_id: str | None,
    now: datetime,
) -> list[AlertEvent]:
    """Store the drafts that are new, each on its trip; returns them as events, for publishing
    after commit."""
    if not drafts:
        return []
    rows = (
        await session.execute(
            _INSERT_ALERTS,
            [
                {
                    "id": uuid.uuid4(),
                    "owner_id": target.owner_id,
                    "trip_id": target.trip_id,
                    "device_id": target.device_id,
                    "rule": draft.rule,
                    "severity": draft.severity,
                    "message": draft.message,
                    "details": draft.details,
                    "dedupe_key": draft.dedupe_key,
                    "request_id": request_id,
                    "raised_at": now,
                    "observed_at": draft.observed_at,
                }
                for target, draft in drafts
            ],
        )
    ).all()
    events = [AlertEvent.from_row(row._asdict()) for row in rows]
    if not events:
        return []
    deliveries = (
        await session.execute(
            _CREATE_DELIVERIES,
            {
                "alert_ids": [event.alert.id for event in events],
                "owner_ids": [event.alert.owner_id for event in events],
                "request_id": request_id,
            },
        )
    ).scalars()
    for delivery_id in deliveries:
        queue.enqueue_after_commit(
            session,
            DELIVER_WEBHOOK.name,
            str(delivery_id),
            job_id=DELIVER_WEBHOOK.job_id(delivery_id),
            **({REQUEST_ID_KWARG: request_id} if request_id else {}),
        )
    for event in events:
        log.info(
            "alert_raised",
            alert_id=str(event.alert.id),
            rule=event.alert.rule,
            trip_id=str(event.alert.trip_id),
        )
    return events


async def publish_alerts(redis: Redis, events: Sequence[AlertEvent]) -> None:
    """Publish committed alerts for live clients. Best effort: a Redis failure is logged (the
    alerts are in Postgres, where clients catch up), never raised."""
    for event in events:
        try:
            await publish_alert(redis, event)
        except (RedisError, OSError) as exc:
            log.warning("alert_publish_failed", alert_id=str(event.alert.id), error=str(exc))
