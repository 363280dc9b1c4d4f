"""Telemetry's daily partitions (revision 0011): created ahead of time, dropped past retention.

`telemetry_events` is partitioned by range of `received_at`, one partition per UTC day, named
`telemetry_events_pYYYYMMDD`, beside a DEFAULT partition (what no day covers: the cron did not
run for longer than it creates ahead) and, after the conversion, `telemetry_events_legacy` (the
table as it was, up to the cut-over). Only the worker's cron changes them, one short
transaction per partition under a lock timeout: a lock not had in time is tried again on the
next run, never queued behind a long query with every insert queued behind it.

- A new day is created as a plain table and then attached: ATTACH holds only a SHARE UPDATE
  EXCLUSIVE lock on the parent (CREATE ... PARTITION OF would block every insert meanwhile).
  Rows the DEFAULT partition took for that day move into it first.
- A day whose end is past retention is dropped whole (DROP TABLE: a brief exclusive lock, no
  scan, no vacuum after), unless a batch received that day is still pending: its events are
  still to be processed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data import SessionFactory

log = structlog.get_logger("tripline.worker.partitions")

PARENT = "telemetry_events"
DEFAULT = "telemetry_events_default"
LEGACY = "telemetry_events_legacy"
DAY = timedelta(days=1)
LOCK_TIMEOUT = "2s"
"""How long a partition change waits for its lock: inserts queue behind a waiting lock, so the
wait is kept short and the change retried on the next run instead."""

_PARTITIONED = """
SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = to_regclass(:parent))
"""
_PARTITIONS = r"""
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
           AS lower,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
           AS upper,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(:parent)
"""
_PENDING_BEFORE = """
SELECT EXISTS (SELECT FROM telemetry_batches WHERE status = 'pending' AND received_at < :before)
"""


@dataclass(frozen=True)
class Partition:
    """One partition of `telemetry_events` and the range of `received_at` it holds."""

    name: str
    lower: datetime | None
    """None: from MINVALUE (the legacy partition), or the DEFAULT partition."""
    upper: datetime | None
    """None: the DEFAULT partition."""
    is_default: bool = False

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.is_default or self.upper is None:
            return False
        return (self.lower is None or self.lower < end) and start < self.upper


@dataclass
class PartitionChanges:
    """What one maintenance run did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Past retention but holding events of a pending batch, or its lock not had in time."""
    moved_from_default: int = 0
    by_batch: list[str] = field(default_factory=list)
    """The partitions left that hold more than one day (legacy, DEFAULT): their expired rows go
    by batch, not by dropping a day."""


def day_start(moment: datetime) -> datetime:
    """Midnight UTC of `moment`'s day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m%d}"


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Telemetry received before this goes: a day boundary, so that batches and the days of
    events they were received on are removed together (kept at least `retention_days`, gone
    within one day more)."""
    return day_start(now - timedelta(days=retention_days))


async def is_partitioned(session: AsyncSession) -> bool:
    """False before revision 0011 has run (the new code runs on the old table meanwhile)."""
    return bool(await session.scalar(text(_PARTITIONED), {"parent": PARENT}))


async def list_partitions(session: AsyncSession) -> list[Partition]:
    rows = await session.execute(text(_PARTITIONS), {"parent": PARENT})
    return [Partition(r.name, r.lower, r.upper, r.is_default) for r in rows]


async def maintain_partitions(
    *, session_factory: SessionFactory, now: datetime, days_ahead: int, retention_days: int
) -> PartitionChanges | None:
    """Create the day partitions from today to `days_ahead` days on, and drop those past
    retention. None, and nothing done, on a table that is not partitioned."""
    changes = PartitionChanges()
    async with session_factory() as session:
        if not await is_partitioned(session):
            return None
        existing = await list_partitions(session)
    today = day_start(now)
    for offset in range(days_ahead + 1):
        start = today + offset * DAY
        if any(p.overlaps(start, start + DAY) for p in existing):
            continue
        name = partition_name(start)
        moved = await _locked_change(session_factory, name, _create_day(name, start))
        if moved is not None:
            changes.created.append(name)
            changes.moved_from_default += moved
    cutoff = retention_cutoff(now, retention_days)
    for partition in existing:
        if partition.upper is None or partition.upper > cutoff:
            continue
        async with session_factory() as session:
            pending = await session.scalar(text(_PENDING_BEFORE), {"before": partition.upper})
        if pending:
            log.warning("telemetry_partition_kept", partition=partition.name, reason="pending")
            changes.kept.append(partition.name)
            continue
        dropped = await _locked_change(session_factory, partition.name, _drop(partition.name))
        (changes.dropped if dropped is not None else changes.kept).append(partition.name)
    changes.by_batch = [
        p.name
        for p in existing
        if (p.is_default or p.lower is None) and p.name not in changes.dropped
    ]
    return changes


Change = Callable[[AsyncSession], Awaitable[int]]
"""One partition change, run in a transaction; returns the rows it moved."""


def _create_day(name: str, start: datetime) -> Change:
    bounds = {"start": start, "end": start + DAY}
    in_day = "received_at >= :start AND received_at < :end"

    async def create(session: AsyncSession) -> int:
        await session.execute(
            text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        )
        # Rows the DEFAULT partition took for this day: ATTACH would refuse them there.
        # Names come from dates, values are bound: nothing of a caller's reaches this SQL.
        move = f"WITH moved AS (DELETE FROM {DEFAULT} WHERE {in_day} RETURNING *) INSERT INTO {name} SELECT * FROM moved"  # noqa: E501, S608
        moved = await session.execute(
            text(move),
            bounds,
        )
        await session.execute(
            text(
                f"ALTER TABLE {PARENT} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ('{start.isoformat()}') TO ('{bounds['end'].isoformat()}')"
            )
        )
        return cast(CursorResult[Any], moved).rowcount

    return create


def _drop(name: str) -> Change:
    async def drop(session: AsyncSession) -> int:
        await session.execute(text(f"DROP TABLE {name}"))
        return 0

    return drop


async def _locked_change(session_factory: SessionFactory, name: str, change: Change) -> int | None:
    """Run `change` in one transaction under `LOCK_TIMEOUT`; None when a lock was not had in
    time (logged; the next run tries again)."""
    try:
        async with session_factory() as session, session.begin():
            await session.execute(
                text("SELECT set_config('lock_timeout', :timeout, true)"),
                {"timeout": LOCK_TIMEOUT},
            )
            return await change(session)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        log.warning("telemetry_partition_lock_timeout", partition=name)
        return None
