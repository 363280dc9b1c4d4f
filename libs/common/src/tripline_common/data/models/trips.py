"""Trip tables: planned journeys of a device, their waypoints and the progress the worker tracks."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped
from sqlmodel import Field, Relationship

from tripline_common.data.models.base import (
    StrEnumType,
    TriplineModel,
    created_at_field,
    enum_check,
    enum_field,
    lat_lon_checks,
    timestamp_field,
    updated_at_field,
    uuid_pk_field,
)


class TripStatus(StrEnum):
    """Lifecycle of a trip: planned → active → completed, or cancelled at any point before."""

    PLANNED = "planned"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


ENDED_TRIP_STATUSES = frozenset({TripStatus.COMPLETED, TripStatus.CANCELLED})
"""Final statuses: their trips are a user's history, counted in `trip_history_totals`."""


class Waypoint(TriplineModel, table=True):
    """An intermediate point of a trip, in visiting order (`seq`)."""

    __tablename__ = "waypoints"
    __table_args__ = (
        UniqueConstraint("trip_id", "seq"),
        CheckConstraint("seq >= 0", name="seq_non_negative"),
        *lat_lon_checks(),
        {"comment": "Ordered intermediate points of a trip."},
    )

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=BigInteger,
        sa_column_args=[Identity()],
    )
    trip_id: uuid.UUID = Field(foreign_key="trips.id", ondelete="CASCADE")
    seq: int = Field(sa_column_kwargs={"comment": "Visiting order within the trip, from 0."})
    lat: float
    lon: float
    name: str | None = Field(default=None, sa_type=String(100))


class Trip(TriplineModel, table=True):
    """A journey a device is expected to make, with the rules its telemetry is checked against."""

    __tablename__ = "trips"
    __table_args__ = (
        enum_check("status", TripStatus),
        *lat_lon_checks("origin_"),
        *lat_lon_checks("destination_"),
        *lat_lon_checks("last_"),
        CheckConstraint("planned_arrival > planned_start", name="planned_window"),
        CheckConstraint("ended_at >= started_at", name="ended_after_started"),
        CheckConstraint("speed_limit_kmh > 0", name="speed_limit_positive"),
        CheckConstraint("corridor_m > 0", name="corridor_positive"),
        CheckConstraint("distance_m >= 0", name="distance_non_negative"),
        Index("ix_trips_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_trips_device_id", "device_id"),
        # Lists: (owner, sort key, id) for each sort, the same after a status filter (the
        # stats' live trips too). None holds a column the worker's progress update writes.
        Index("ix_trips_owner_id_planned_start_id", "owner_id", "planned_start", "id"),
        Index("ix_trips_owner_id_name_id", "owner_id", "name", "id"),
        Index("ix_trips_owner_id_status_created_at_id", "owner_id", "status", "created_at", "id"),
        Index(
            "ix_trips_owner_id_status_planned_start_id", "owner_id", "status", "planned_start", "id"
        ),
        Index("ix_trips_owner_id_status_name_id", "owner_id", "status", "name", "id"),
        Index("ix_trips_device_id_created_at_id", "device_id", "created_at", "id"),
        # A device drives one trip at a time: the worker attaches telemetry to *the* active trip.
        Index(
            "uq_trips_one_active_per_device",
            "device_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        {"comment": "Planned and actual journeys of a device."},
    )

    id: uuid.UUID = uuid_pk_field()
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    device_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="devices.id",
        ondelete="SET NULL",
        sa_column_kwargs={"comment": "The device expected to make the trip; NULL if deleted."},
    )
    name: str = Field(sa_type=String(200))
    status: TripStatus = enum_field(TripStatus, TripStatus.PLANNED)
    origin_lat: float
    origin_lon: float
    destination_lat: float
    destination_lon: float
    planned_start: datetime = timestamp_field(required=True)
    planned_arrival: datetime = timestamp_field(
        required=True, comment="When the trip should end; later than this raises a `late` alert."
    )
    speed_limit_kmh: float | None = Field(
        default=None,
        sa_column_kwargs={"comment": "Faster telemetry raises a `speeding` alert; NULL: no rule."},
    )
    corridor_m: float | None = Field(
        default=None,
        sa_column_kwargs={
            "comment": "Allowed distance (m) from the planned route; beyond raises `corridor`."
        },
    )
    started_at: datetime | None = timestamp_field()
    ended_at: datetime | None = timestamp_field()
    # Progress, maintained by the worker from telemetry.
    last_lat: float | None = None
    last_lon: float | None = None
    last_seen_at: datetime | None = timestamp_field(comment="Time of the latest telemetry event.")
    distance_m: float = Field(
        default=0.0,
        sa_column_kwargs={"server_default": text("0"), "comment": "Distance travelled so far (m)."},
    )
    eta: datetime | None = timestamp_field(comment="Estimated arrival, from recent progress.")
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    # Not loaded implicitly: lazy="raise" turns an accidental lazy load (an N+1 query, or an
    # error under asyncio) into an immediate, clear error. Load explicitly with
    # `select(Trip).options(selectinload(Trip.waypoints))`. Deletes cascade in the database.
    waypoints: Mapped[list[Waypoint]] = Relationship(
        sa_relationship_kwargs={
            "lazy": "raise",
            "order_by": "Waypoint.seq",
            "cascade": "all, delete-orphan",
            "passive_deletes": True,
        }
    )


class TripHistoryTotal(TriplineModel, table=True):
    """How many of a user's trips ended in one final status, and their distance: what the trip
    stats read instead of the history itself. Kept by triggers on `trips` (revision 0008), so
    every write path, the worker's and a hand-typed one alike, keeps it true."""

    __tablename__ = "trip_history_totals"
    __table_args__ = (
        enum_check("status", TripStatus),
        {"comment": "Per user and final status: trips and distance (m); kept by trigger."},
    )

    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    status: TripStatus = Field(sa_type=StrEnumType(TripStatus), primary_key=True)
    trips: int = Field(sa_type=BigInteger)
    distance_m: float


class TripLiveCount(TriplineModel, table=True):
    """How many of a user's trips are planned, and how many active: what the trip stats read
    instead of the live trips themselves. Kept by triggers on `trips` (revision 0010) that fire
    only when a trip enters or leaves a live status, never on the worker's progress updates."""

    __tablename__ = "trip_live_counts"
    __table_args__ = (
        enum_check("status", TripStatus),
        {"comment": "Per user and live status (planned, active): trips; kept by trigger."},
    )

    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    status: TripStatus = Field(sa_type=StrEnumType(TripStatus), primary_key=True)
    trips: int = Field(sa_type=BigInteger)
