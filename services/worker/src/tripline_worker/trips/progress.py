"""How far a trip has got: advance its progress by a batch of fixes (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from tripline_worker.geo import Route, path_length_m

# A fix less accurate than this does not move the odometer (GPS jumps would inflate it).
MAX_ACCURACY_FOR_DISTANCE_M = 100.0
# Closer than this to the end of the route counts as arrived.
ARRIVED_WITHIN_M = 50.0
# Slower than this, an ETA means nothing (a parked vehicle).
MIN_SPEED_FOR_ETA_KMH = 1.0
# Before a trip has run this long, no pace says when it ends: pulling away from the start, the
# fleet's trips announced arrivals far past their real ones.
MIN_TRIP_SECONDS_FOR_ETA = 60.0


class Fix(NamedTuple):
    """One position of the device, as stored (a tuple: thousands are built per batch)."""

    recorded_at: datetime
    lat: float
    lon: float
    speed_kmh: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True)
class TripProgress:
    """The progress columns of a trip."""

    last_lat: float | None
    last_lon: float | None
    last_seen_at: datetime | None
    distance_m: float
    eta: datetime | None
    remaining_m: float | None = None


def advance_progress(
    previous: TripProgress,
    fixes: Sequence[Fix],
    route: Route,
    started_at: datetime | None,
) -> TripProgress:
    """The trip's progress after `fixes` (sorted by time).

    Only fixes newer than the trip's last one move it: a batch that arrives late (a device
    uploading its backlog out of order) is attached to the trip and checked against the rules,
    but does not rewind the position or double the distance.
    """
    newer = [
        fix
        for fix in fixes
        if previous.last_seen_at is None or fix.recorded_at > previous.last_seen_at
    ]
    if not newer:
        return previous

    path = (
        [(previous.last_lat, previous.last_lon)]
        if previous.last_lat is not None and previous.last_lon is not None
        else []
    )
    path += [
        (fix.lat, fix.lon)
        for fix in newer
        if fix.accuracy_m is None or not fix.accuracy_m > MAX_ACCURACY_FOR_DISTANCE_M
    ]
    distance = path_length_m(path, previous.distance_m)

    last = newer[-1]
    remaining = route.locate(last.lat, last.lon).remaining_m
    speed_kmh = _speed_estimate_kmh(newer, distance, started_at)
    if remaining <= ARRIVED_WITHIN_M:
        eta: datetime | None = last.recorded_at
    elif speed_kmh is not None and speed_kmh >= MIN_SPEED_FOR_ETA_KMH:
        eta = last.recorded_at + timedelta(seconds=remaining / (speed_kmh / 3.6))
    else:
        eta = None
    return TripProgress(
        last_lat=last.lat,
        last_lon=last.lon,
        last_seen_at=last.recorded_at,
        distance_m=distance,
        eta=eta,
        remaining_m=remaining,
    )


def _speed_estimate_kmh(
    newer: Sequence[Fix], distance_m: float, started_at: datetime | None
) -> float | None:
    """The pace to reach the end at: the faster of the batch's mean reported speed and the
    trip's average since it started.

    One batch alone misleads: braking into a stop or pulling away from one, it announces an
    arrival hours away and raised false "late" alerts. The trip's average alone lags a vehicle
    that has just left a jam. Taking the faster one keeps the ETA optimistic, so "late" means
    late even at the better pace; a vehicle that truly crawls is still caught, since its ETA is
    never before its latest fix. None in the trip's first `MIN_TRIP_SECONDS_FOR_ETA`.
    """
    if started_at is None:
        return None
    elapsed = (newer[-1].recorded_at - started_at).total_seconds()
    if elapsed < MIN_TRIP_SECONDS_FOR_ETA:
        return None
    average = distance_m / elapsed * 3.6
    reported = [fix.speed_kmh for fix in newer if fix.speed_kmh is not None]
    return max(average, sum(reported) / len(reported)) if reported else average
