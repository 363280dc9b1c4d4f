"""The overview charts' figures, read so that their cost follows the window, never the tables.

- Events accepted per second: the batches ingest received in the window, summed by slot of
  `received_at`, read from `ix_telemetry_batches_status_received_at` (one range per status).
- Events processed per second: the processed batches summed by slot of `processed_at`, found
  through the same index among those received up to `PROCESSING_LOOKBACK_SECONDS` before the
  window (there is no index on `processed_at`, and adding one would cost the worker's update on
  the hot path). A batch processed later than that after its arrival, a retry of one that
  failed, is left out of the chart; the overview's counts and failures show it.
- Queue depth: the samples the queue monitor keeps in Redis (`queues.history`).
- Alerts per hour: the last day's alerts by hour of `raised_at`, from `ix_alerts_raised_at`.

The answer is cached in Redis for `OVERVIEW_CACHE_SECONDS`, like the overview, so that the
charts' periodic refresh costs one computation per period however many operators watch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_admin.activity.schemas import Activity, Series
from tripline_admin.queues.history import STEP_SECONDS, WINDOW_SECONDS, depth_history, slot_of

CACHE_KEY = "tripline:admin:activity"
HOUR = 3600
ALERT_HOURS = 24
PROCESSING_LOOKBACK_SECONDS = WINDOW_SECONDS
"""How long before the window a batch may have arrived and still count as processed in it."""

ACCEPTED = f"""
    SELECT floor(extract(epoch FROM received_at) / {STEP_SECONDS})::bigint * {STEP_SECONDS}
               AS slot,
           sum(event_count) AS amount
    FROM telemetry_batches
    WHERE status IN ('pending', 'processed', 'failed')
      AND received_at >= :since AND received_at < :until
    GROUP BY 1
"""  # noqa: S608 - the slot lengths are constants of this module, no input.

PROCESSED = f"""
    SELECT floor(extract(epoch FROM processed_at) / {STEP_SECONDS})::bigint * {STEP_SECONDS}
               AS slot,
           sum(event_count) AS amount
    FROM telemetry_batches
    WHERE status = 'processed' AND received_at >= :received_since
      AND processed_at >= :since AND processed_at < :until
    GROUP BY 1
"""  # noqa: S608 - the slot lengths are constants of this module, no input.

ALERTS = f"""
    SELECT floor(extract(epoch FROM raised_at) / {HOUR})::bigint * {HOUR} AS slot,
           count(*) AS amount
    FROM alerts
    WHERE raised_at >= :since AND raised_at < :until
    GROUP BY 1
"""  # noqa: S608 - the slot lengths are constants of this module, no input.

STATEMENTS = {"accepted": ACCEPTED, "processed": PROCESSED, "alerts": ALERTS}
"""Every statement the charts issue."""


def _series(
    amounts: Mapping[int, float], *, start: int, step: int, count: int, per: float = 1.0
) -> Series:
    # Every slot of the window, 0 where no row fell in it (`per` turns a sum into a rate).
    return Series(
        start=datetime.fromtimestamp(start, UTC),
        step_seconds=step,
        values=[float(amounts.get(start + i * step, 0)) / per for i in range(count)],
    )


def _amounts(rows: Iterable[Any]) -> dict[int, float]:
    return {int(row.slot): float(row.amount) for row in rows}


async def read_activity(
    *, session: AsyncSession, redis: ArqRedis, queue_name: str, now: datetime
) -> Activity:
    """The charts' figures at `now`: the last `WINDOW_SECONDS` in slots of `STEP_SECONDS`
    (the slot under way left out, it would read low), and the last 24 hours by hour (the hour
    under way included: a count so far)."""
    until = slot_of(now.timestamp())
    start = until - WINDOW_SECONDS
    count = WINDOW_SECONDS // STEP_SECONDS
    window = {
        "since": datetime.fromtimestamp(start, UTC),
        "until": datetime.fromtimestamp(until, UTC),
    }
    accepted = await session.execute(text(ACCEPTED), window)
    processed = await session.execute(
        text(PROCESSED),
        {
            **window,
            "received_since": window["since"] - timedelta(seconds=PROCESSING_LOOKBACK_SECONDS),
        },
    )
    hour = int(now.timestamp()) // HOUR * HOUR
    alerts_start = hour - (ALERT_HOURS - 1) * HOUR
    alerts = await session.execute(
        text(ALERTS), {"since": datetime.fromtimestamp(alerts_start, UTC), "until": now}
    )
    depths = await depth_history(redis, queue_name, since=start)
    return Activity(
        as_of=now,
        accepted_per_second=_series(
            _amounts(accepted), start=start, step=STEP_SECONDS, count=count, per=STEP_SECONDS
        ),
        processed_per_second=_series(
            _amounts(processed), start=start, step=STEP_SECONDS, count=count, per=STEP_SECONDS
        ),
        queue_depth=Series(
            start=datetime.fromtimestamp(start, UTC),
            step_seconds=STEP_SECONDS,
            values=[
                float(depths[slot]) if slot in depths else None
                for slot in range(start, until, STEP_SECONDS)
            ],
        ),
        alerts_per_hour=_series(_amounts(alerts), start=alerts_start, step=HOUR, count=ALERT_HOURS),
    )


async def activity(
    *, session: AsyncSession, redis: ArqRedis, queue_name: str, cache_seconds: int
) -> Activity:
    """The charts' figures: from the cache when read less than `cache_seconds` ago (by any
    replica), else read now and cached."""
    if cache_seconds and (cached := await redis.get(CACHE_KEY)) is not None:
        return Activity.model_validate_json(cached)
    fresh = await read_activity(
        session=session, redis=redis, queue_name=queue_name, now=datetime.now(UTC)
    )
    if cache_seconds:
        await redis.set(CACHE_KEY, fresh.model_dump_json(), ex=cache_seconds)
    return fresh
