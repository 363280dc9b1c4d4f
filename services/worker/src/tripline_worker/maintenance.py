"""Housekeeping: delete telemetry batches past their retention, and sessions long expired."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, text
from sqlmodel import col

from tripline_common.data import SessionFactory
from tripline_common.data.models import AuthSession, BatchStatus, TelemetryBatch


async def purge_old_telemetry(
    *, session_factory: SessionFactory, older_than: timedelta, chunk: int, budget_seconds: float
) -> int:
    """Before revision 0011 (the table not yet partitioned): delete finished batches received
    before `older_than` ago, with their events (the foreign key cascades); returns the number
    of batches deleted.

    Deletes `chunk` batches per transaction, so locks and WAL bursts stay small and other
    work goes on between chunks, and stops after `budget_seconds`: the next run goes on.
    Pending batches are never deleted (they are still to be processed, or failing visibly).
    """
    cutoff = datetime.now(UTC) - older_than
    deadline = time.monotonic() + budget_seconds
    deleted = 0
    while time.monotonic() < deadline:
        async with session_factory() as session, session.begin():
            oldest = (
                select(col(TelemetryBatch.id))
                .where(
                    col(TelemetryBatch.status).in_([BatchStatus.PROCESSED, BatchStatus.FAILED]),
                    col(TelemetryBatch.received_at) < cutoff,
                )
                .limit(chunk)
            )
            result = await session.execute(
                delete(TelemetryBatch).where(col(TelemetryBatch.id).in_(oldest))
            )
        count = cast(CursorResult[Any], result).rowcount
        deleted += count
        if count < chunk:
            break
    return deleted


async def purge_expired_batches(
    *,
    session_factory: SessionFactory,
    before: datetime,
    chunk: int,
    budget_seconds: float,
    unpartitioned: Sequence[str],
) -> int:
    """With the table partitioned: delete finished batches received before `before`, `chunk`
    per transaction within `budget_seconds`, and their events in the partitions that hold more
    than one day (`unpartitioned`: the legacy and the DEFAULT partition; a day's partition is
    dropped whole instead, by `partitions.maintain_partitions`). Returns the batches deleted.
    """
    deadline = time.monotonic() + budget_seconds
    deleted = 0
    while time.monotonic() < deadline:
        async with session_factory() as session, session.begin():
            ids = list(
                await session.scalars(
                    select(col(TelemetryBatch.id))
                    .where(
                        col(TelemetryBatch.status).in_([BatchStatus.PROCESSED, BatchStatus.FAILED]),
                        col(TelemetryBatch.received_at) < before,
                    )
                    .limit(chunk)
                )
            )
            for partition in unpartitioned:
                await session.execute(
                    text(f"DELETE FROM {partition} WHERE batch_id = ANY(:ids)"),  # noqa: S608
                    {"ids": ids},
                )
            await session.execute(delete(TelemetryBatch).where(col(TelemetryBatch.id).in_(ids)))
        deleted += len(ids)
        if len(ids) < chunk:
            break
    return deleted


async def purge_expired_sessions(
    *, session_factory: SessionFactory, grace: timedelta, chunk: int, budget_seconds: float
) -> int:
    """Delete login sessions that expired more than `grace` ago; returns how many.

    The grace period keeps recent sessions listable (the user's "where am I logged in",
    an operator's investigation) for a while after they end.
    """
    cutoff = datetime.now(UTC) - grace
    deadline = time.monotonic() + budget_seconds
    deleted = 0
    while time.monotonic() < deadline:
        async with session_factory() as session, session.begin():
            expired = (
                select(col(AuthSession.id)).where(col(AuthSession.expires_at) < cutoff).limit(chunk)
            )
            result = await session.execute(
                delete(AuthSession).where(col(AuthSession.id).in_(expired))
            )
        count = cast(CursorResult[Any], result).rowcount
        deleted += count
        if count < chunk:
            break
    return deleted
