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

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data import driver_connection
from tripline_common.messaging import (
    DELIVER_WEBHOOK,
    REQUEST_ID_KWARG,
    AlertEvent,
    JobQueue,
    publish_alert,
)
from tripline_worker.alerts.rules import AlertDraft

log = structlog.get_logger("tripline.worker.alerts")

# One statement for any number of alerts, each column an array; it returns only the rows
# inserted (the columns of `ALERT_EVENT_COLUMNS`), so only new alerts go on to be delivered
# and published. Plain SQL on the session's connection: it runs for most batches, and the ORM's
# bulk insert cost more CPU than the rules.
_INSERT_ALERTS = """
    INSERT INTO alerts (id, owner_id, trip_id, device_id, rule, severity, message, details,
                        dedupe_key, observed_at, request_id, raised_at)
    SELECT id, owner_id, trip_id, device_id, rule, severity, message, CAST(details AS jsonb),
           dedupe_key, observed_at, $10::varchar, $11::timestamptz
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::varchar[], $6::varchar[],
                $7::text[], $8::text[], $9::varchar[], $12::timestamptz[])
      AS draft(id, owner_id, trip_id, device_id, rule, severity, message, details, dedupe_key,
               observed_at)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, owner_id, trip_id, device_id, rule, severity, status, message, details,
              raised_at, request_id
""".strip()  # Spans and logs show the statement from its first word.

_CREATE_DELIVERIES = """
    INSERT INTO webhook_deliveries (endpoint_id, alert_id, request_id)
    SELECT endpoint.id, alert.id, $3::varchar
    FROM unnest($1::uuid[], $2::uuid[]) AS alert(id, owner_id)
    JOIN webhook_endpoints AS endpoint
      ON endpoint.owner_id = alert.owner_id AND endpoint.is_active
    ON CONFLICT (endpoint_id, alert_id) DO NOTHING
    RETURNING id
""".strip()  # Spans and logs show the statement from its first word.


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
    connection = await driver_connection(session)
    rows = await connection.fetch(
        _INSERT_ALERTS,
        [uuid.uuid4() for _ in drafts],
        [target.owner_id for target, _ in drafts],
        [target.trip_id for target, _ in drafts],
        [target.device_id for target, _ in drafts],
        [draft.rule.value for _, draft in drafts],
        [draft.severity.value for _, draft in drafts],
        [draft.message for _, draft in drafts],
        [orjson.dumps(draft.details).decode() for _, draft in drafts],
        [draft.dedupe_key for _, draft in drafts],
        request_id,
        now,
        [draft.observed_at for _, draft in drafts],
    )
    events = [AlertEvent.from_row(dict(row.items())) for row in rows]
    if not events:
        return []
    deliveries = await connection.fetch(
        _CREATE_DELIVERIES,
        [event.alert.id for event in events],
        [event.alert.owner_id for event in events],
        request_id,
    )
    for (delivery_id,) in deliveries:
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
