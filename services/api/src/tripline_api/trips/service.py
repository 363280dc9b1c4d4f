"""Trips: plan, change, list and summarise a user's trips. Shared by every API version (they
differ only in their models); nothing here knows about HTTP.

Every query is filtered by owner, so another user's trip is indistinguishable from a missing
one (the caller answers 404 for both, never 403).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    DateTime,
    Float,
    Uuid,
    bindparam,
    cast,
    delete,
    func,
    inspect,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlmodel import col

from tripline_api.trips.drafts import TripDraft, WaypointDraft
from tripline_api.trips.schemas import TripFilters, TripStats, TripStatusCounts
from tripline_common.data import PgExecutor, ReadCache
from tripline_common.data.models import (
    ENDED_TRIP_STATUSES,
    Device,
    Trip,
    TripHistoryTotal,
    TripLiveCount,
    TripStatus,
    Waypoint,
)
from tripline_common.platform import (
    AppError,
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
)
from tripline_common.security import AccessClaims, live_session_sql
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

TRIP_SORT = SortSpec(
    columns={
        "created_at": col(Trip.created_at),
        "planned_start": col(Trip.planned_start),
        "name": col(Trip.name),
    },
    tiebreaker=col(Trip.id),
    default="-created_at",
)
"""What trip lists may be sorted on (NOT NULL columns only: keyset paging needs them)."""

TRIP_STATS: ReadCache[TripStats] = ReadCache("trip-stats", TripStats, ttl_seconds=60)
"""Per-user statistics; any write to the user's trips invalidates them."""

# Where a trip may go from each status. Completed and cancelled are final; staying put is
# allowed so that a repeated PUT is harmless.
TRANSITIONS: Mapping[TripStatus, frozenset[TripStatus]] = {
    TripStatus.PLANNED: frozenset({TripStatus.PLANNED, TripStatus.ACTIVE, TripStatus.CANCELLED}),
    TripStatus.ACTIVE: frozenset({TripStatus.ACTIVE, TripStatus.COMPLETED, TripStatus.CANCELLED}),
    TripStatus.COMPLETED: frozenset({TripStatus.COMPLETED}),
    TripStatus.CANCELLED: frozenset({TripStatus.CANCELLED}),
}

PLAN_FIELDS = tuple(
    field.name for field in dataclasses.fields(TripDraft) if field.name != "waypoints"
)

# The hot read (GET /trips/{id}) runs on the raw asyncpg pool (see `tripline_common.data.pg`): one
# parameterised statement, built once, with the waypoints aggregated into the same row; no ORM
# identity map, no transaction, no pre-ping. One round trip per request. (The waypoints come
# back as JSON text, whatever JSON codec a connection may have registered.)
_TRIP_OF_OWNER_SQL = f"""
SELECT {", ".join(f"t.{column.name}" for column in inspect(Trip).local_table.columns)},
       COALESCE(
           (SELECT json_agg(json_build_object('seq', w.seq, 'lat', w.lat, 'lon', w.lon,
                                              'name', w.name) ORDER BY w.seq)
              FROM waypoints AS w
             WHERE w.trip_id = t.id),
           '[]'
       )::text AS waypoints
  FROM trips AS t
 WHERE t.id = $1 AND t.owner_id = $2
"""  # noqa: S608 - the interpolated part is the model's own column names, not input.
# Writers load through the ORM and lock the row (not the joined waypoints), so concurrent
# updates of one trip apply one after another.
_TRIP_OF_OWNER_FOR_UPDATE = (
    select(Trip)
    .where(col(Trip.id) == bindparam("trip_id"), col(Trip.owner_id) == bindparam("owner_id"))
    .options(joinedload(Trip.waypoints))
    .with_for_update(of=Trip)
)

# The owner's trips by status, with their distance and the next planned start, in a few index
# reads however many trips the owner has: the counts from the totals the database keeps by
# trigger (`TripLiveCount` for planned and active trips, `TripHistoryTotal` for the ended ones,
# with their distance), the distance of the active trips (one per device at most; a planned
# trip has travelled nothing) and the next start, the first planned one after now in the
# status index.
_OWNER: BindParameter[uuid.UUID] = bindparam("owner_id", type_=Uuid())
_NO_START = cast(null(), DateTime(timezone=True))  # Typed: a UNION does not guess.
_NEXT_PLANNED_START = (
    select(col(Trip.planned_start))
    .where(
        col(Trip.owner_id) == _OWNER,
        col(Trip.status) == TripStatus.PLANNED,
        col(Trip.planned_start) > func.now(),
    )
    .order_by(col(Trip.planned_start))
    .limit(1)
    .scalar_subquery()
)
_STATS: CompoundSelect[TripStatus, int, float, datetime | None] = union_all(
    select(col(TripLiveCount.status), col(TripLiveCount.trips), literal(0.0, Float), null()).where(
        col(TripLiveCount.owner_id) == _OWNER
    ),
    select(
        col(TripHistoryTotal.status),
        col(TripHistoryTotal.trips),
        col(TripHistoryTotal.distance_m),
        _NO_START,
    ).where(
        col(TripHistoryTotal.owner_id) == _OWNER,
        col(TripHistoryTotal.status).in_(ENDED_TRIP_STATUSES),
    ),
    select(
        literal(TripStatus.ACTIVE.value),
        literal(0),
        func.coalesce(func.sum(Trip.distance_m), 0.0),
        _NO_START,
    ).where(col(Trip.owner_id) == _OWNER, col(Trip.status) == TripStatus.ACTIVE),
    select(literal(TripStatus.PLANNED.value), literal(0), literal(0.0, Float), _NEXT_PLANNED_START),
)


@dataclasses.dataclass(frozen=True)
class BulkOutcome:
    """The result of one item of a bulk create: the trip, or why it was refused."""

    index: int
    trip: Trip | None
    error: AppError | None


def trip_not_found() -> NotFoundError:
    return NotFoundError("Trip not found.", code="trip_not_found")


# --- Reads -------------------------------------------------------------------------------------


# The hottest read of the API: the session check and the trip in ONE round trip. The session
# condition is auth's own (`live_session_sql`); a dead session wins over a missing trip (401).
_TRIP_FOR_SESSION_SQL = f"""
SELECT live.ok AS session_live, trip.*
  FROM (SELECT EXISTS (SELECT 1 FROM auth_sessions s JOIN users u ON u.id = s.user_id
                        WHERE {live_session_sql("$3", "$2")}) AS ok) AS live
  LEFT JOIN LATERAL ({_TRIP_OF_OWNER_SQL}) AS trip ON live.ok
"""  # noqa: S608 - fixed SQL with numbered parameters, no input.


async def get_trip_for_session(
    *, pg: PgExecutor, claims: AccessClaims, trip_id: uuid.UUID
) -> dict[str, Any]:
    """The token owner's trip as a row (`waypoints` a list of dicts in order), checking the
    token's session in the same query: 401 when the session has ended, 404 when the trip is
    missing or someone else's. Reads committed data from the raw pool."""
    row = await pg.fetchrow(_TRIP_FOR_SESSION_SQL, trip_id, claims.user_id, claims.session_id)
    if row is None or not row["session_live"]:
        raise UnauthorizedError("The session has ended; log in again.", code="session_revoked")
    if row["id"] is None:
        raise trip_not_found()
    trip = dict(row)
    del trip["session_live"]
    trip["waypoints"] = orjson.loads(trip["waypoints"])
    return trip


async def list_trips(
    *, session: AsyncSession, owner_id: uuid.UUID, filters: TripFilters, page: PageParams
) -> PageResult[Trip]:
    """One page of the owner's trips, filtered and sorted; waypoints in one more query."""
    statement = (
        select(Trip).where(col(Trip.owner_id) == owner_id).options(selectinload(Trip.waypoints))
    )
    if filters.status:
        statement = statement.where(col(Trip.status).in_(filters.status))
    if filters.device_id is not None:
        statement = statement.where(col(Trip.device_id) == filters.device_id)
    if filters.planned_start_from is not None:
        statement = statement.where(col(Trip.planned_start) >= filters.planned_start_from)
    if filters.planned_start_to is not None:
        statement = statement.where(col(Trip.planned_start) < filters.planned_start_to)
    return await fetch_page(session, statement, page, TRIP_SORT)


async def trip_stats(*, session: AsyncSession, redis: Redis, owner_id: uuid.UUID) -> TripStats:
    """Counts by status, distance travelled and the next planned start; cached per user."""

    async def compute() -> TripStats:
        rows = (await session.execute(_STATS, {"owner_id": owner_id})).all()
        counts = dict.fromkeys((status.value for status in TripStatus), 0)
        distance, next_start = 0.0, None
        for status, count, status_distance, status_next_start in rows:
            counts[TripStatus(status).value] += count
            distance += status_distance
            next_start = next_start or status_next_start
        return TripStats(
            total=sum(counts.values()),
            by_status=TripStatusCounts(**counts),
            total_distance_m=max(distance, 0.0),  # Totals kept by sums may drift by rounding.
            next_planned_start=next_start,
            computed_at=datetime.now(UTC),
        )

    stats: TripStats
    stats, _from_cache = await TRIP_STATS.get_or_compute(redis, str(owner_id), compute)
    return stats


# --- Writes ------------------------------------------------------------------------------------


async def create_trip(
    *, session: AsyncSession, redis: Redis, owner_id: uuid.UUID, draft: TripDraft
) -> Trip:
    """A new `planned` trip; its device, if any, must be one of the owner's."""
    if draft.device_id is not None:
        await _require_devices(session, owner_id, {draft.device_id})
    trip = _new_trip(owner_id, draft)
    session.add(trip)
    await session.flush()
    await TRIP_STATS.invalidate(redis, str(owner_id))
    return trip


async def create_trips(
    *,
    session: AsyncSession,
    redis: Redis,
    owner_id: uuid.UUID,
    drafts: Sequence[TripDraft | AppError],
) -> list[BulkOutcome]:
    """Create each valid draft in a savepoint of its own, so one failing item (refused input,
    someone else's device, a constraint) fails alone. The rest commit together with the
    request. Items that arrive as errors (refused by their API model) are reported as such."""
    wanted = {d.device_id for d in drafts if isinstance(d, TripDraft) and d.device_id}
    owned = await _owned_devices(session, owner_id, wanted)
    outcomes: list[BulkOutcome] = []
    for index, draft in enumerate(drafts):
        if isinstance(draft, AppError):
            outcomes.append(BulkOutcome(index, None, draft))
            continue
        if draft.device_id is not None and draft.device_id not in owned:
            error = _unknown_device(["body", "items", index, "device_id"])
            outcomes.append(BulkOutcome(index, None, error))
            continue
        trip = _new_trip(owner_id, draft)
        try:
            async with session.begin_nested():
                session.add(trip)
        except IntegrityError:
            conflict = ConflictError("The trip conflicts with stored data.", code="conflict")
            outcomes.append(BulkOutcome(index, None, conflict))
            continue
        outcomes.append(BulkOutcome(index, trip, None))
    if any(outcome.trip is not None for outcome in outcomes):
        await TRIP_STATS.invalidate(redis, str(owner_id))
    return outcomes


async def replace_trip(
    *,
    session: AsyncSession,
    redis: Redis,
    owner_id: uuid.UUID,
    trip_id: uuid.UUID,
    draft: TripDraft,
    status: TripStatus,
) -> Trip:
    """Set every writable field (PUT). Repeating the same replacement changes nothing."""
    changes: dict[str, Any] = {name: getattr(draft, name) for name in PLAN_FIELDS}
    changes.update(status=status, waypoints=draft.waypoints)
    return await update_trip(
        session=session, redis=redis, owner_id=owner_id, trip_id=trip_id, changes=changes
    )


async def update_trip(
    *,
    session: AsyncSession,
    redis: Redis,
    owner_id: uuid.UUID,
    trip_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> Trip:
    """Apply `changes` (plan fields, `status`, `waypoints`) to the owner's trip.

    The rules are checked on the trip as it will be: arrival after start, the device one of the
    owner's, and the status move allowed by `TRANSITIONS` (409 otherwise).
    """
    result = await session.execute(
        _TRIP_OF_OWNER_FOR_UPDATE, {"trip_id": trip_id, "owner_id": owner_id}
    )
    trip = result.unique().scalar_one_or_none()
    if trip is None:
        raise trip_not_found()

    device_id = changes.get("device_id")
    if device_id is not None and device_id != trip.device_id:
        await _require_devices(session, owner_id, {device_id})
    start = changes.get("planned_start", trip.planned_start)
    arrival = changes.get("planned_arrival", trip.planned_arrival)
    if arrival <= start:
        raise UnprocessableError(
            details=[
                {
                    "loc": ["body", "planned_arrival"],
                    "msg": "planned_arrival must be later than planned_start",
                    "type": "planned_window",
                }
            ]
        )
    if "status" in changes:
        _move(trip, changes["status"])
    for name in PLAN_FIELDS:
        if name in changes:
            setattr(trip, name, changes[name])
    if "waypoints" in changes:
        _set_waypoints(trip, changes["waypoints"])
    await session.flush()
    await TRIP_STATS.invalidate(redis, str(owner_id))
    return trip


async def delete_trip(
    *, session: AsyncSession, redis: Redis, owner_id: uuid.UUID, trip_id: uuid.UUID
) -> None:
    """Delete the owner's trip (its waypoints go with it); 404 when there is none, so a second
    DELETE of the same trip is a 404 too."""
    deleted = await session.scalar(
        delete(Trip)
        .where(col(Trip.id) == trip_id, col(Trip.owner_id) == owner_id)
        .returning(col(Trip.id))
        .execution_options(synchronize_session=False)
    )
    if deleted is None:
        raise trip_not_found()
    await TRIP_STATS.invalidate(redis, str(owner_id))


# --- Rules -------------------------------------------------------------------------------------


def _new_trip(owner_id: uuid.UUID, draft: TripDraft) -> Trip:
    trip = Trip(owner_id=owner_id, **{name: getattr(draft, name) for name in PLAN_FIELDS})
    trip.waypoints = [
        Waypoint(trip_id=trip.id, seq=seq, lat=point.lat, lon=point.lon, name=point.name)
        for seq, point in enumerate(draft.waypoints)
    ]
    return trip


def _set_waypoints(trip: Trip, points: Sequence[WaypointDraft]) -> None:
    # Update in place, then append or trim, so `seq` stays 0..n-1 and the (trip_id, seq)
    # unique constraint never sees two rows with one seq mid-flush. An unchanged list writes
    # nothing, which keeps a repeated PUT free of side effects.
    current = trip.waypoints
    for seq, point in enumerate(points):
        if seq < len(current):
            stored = current[seq]
            stored.lat, stored.lon, stored.name = point.lat, point.lon, point.name
        else:
            current.append(
                Waypoint(trip_id=trip.id, seq=seq, lat=point.lat, lon=point.lon, name=point.name)
            )
    del current[len(points) :]


def _move(trip: Trip, status: TripStatus) -> None:
    allowed = TRANSITIONS[trip.status]
    if status not in allowed:
        raise ConflictError(
            f"A {trip.status.value} trip cannot become {status.value}.",
            code="invalid_status_transition",
            details={"from": trip.status.value, "to": status.value, "allowed": sorted(allowed)},
        )
    now = datetime.now(UTC)
    if status is TripStatus.ACTIVE and trip.started_at is None:
        trip.started_at = now
    if status in (TripStatus.COMPLETED, TripStatus.CANCELLED) and trip.ended_at is None:
        trip.ended_at = now
    trip.status = status


async def _owned_devices(
    session: AsyncSession, owner_id: uuid.UUID, device_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    if not device_ids:
        return set()
    rows = await session.scalars(
        select(col(Device.id)).where(
            col(Device.owner_id) == owner_id, col(Device.id).in_(device_ids)
        )
    )
    return set(rows)


async def _require_devices(
    session: AsyncSession, owner_id: uuid.UUID, device_ids: Collection[uuid.UUID]
) -> None:
    if set(device_ids) - await _owned_devices(session, owner_id, device_ids):
        raise _unknown_device(["body", "device_id"])


def _unknown_device(loc: list[str | int]) -> UnprocessableError:
    # The same answer for a device that does not exist and one that belongs to someone else.
    return UnprocessableError(
        "The device is not one of yours.",
        code="unknown_device",
        details=[{"loc": loc, "msg": "no such device among yours", "type": "unknown_device"}],
    )
