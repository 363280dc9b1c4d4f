"""Which alerts the rules must raise for what the fleet sent, computed here from the fleet's
own record of its fixes and batches (never with the worker's code), as the rules are documented:

- speeding: a fix faster than the trip's limit opens an alert unless an alert of the trip's
  already began less than the alert window (device time) from it; the fixes that follow an
  opener within the window belong to it. Alerts are anchored at their first fix's time.
- corridor: the same for fixes farther from the route than the corridor, once their accuracy
  radius is subtracted.
- late: once per trip, after a batch that moves the trip on (fixes newer than its latest),
  when the estimated arrival (the latest fix's time plus the route left at the faster of the
  batch's mean reported speed and the trip's average since it started, by its odometer; the
  fix's time when within 50 m of the end, when slower than 1 km/h, or in the trip's first
  minute) is later than the planned arrival plus the grace period.
- lost signal: none, as long as every silence is shorter than the threshold (the fleet keeps
  its gaps well below it, and completes its trips when it stops).

Batches are judged in the order the fleet sent them, each after the ones before: a device
sends its next batch once the last one is processed (`FleetConfig.in_order`), since the worker
runs jobs concurrently and both the windows' anchors and the late check depend on the order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tripline_devstack.fleet.geometry import Plane, Polyline

ARRIVED_WITHIN_M = 50.0
MIN_SPEED_FOR_ETA_KMH = 1.0
MIN_TRIP_SECONDS_FOR_ETA = 60.0
MAX_ACCURACY_FOR_DISTANCE_M = 100.0  # a less accurate fix does not move the odometer


@dataclass(frozen=True, order=True)
class AlertKey:
    """An alert's identity: its trip, its rule and, for windowed rules, its first fix's time
    (whole seconds since 1970)."""

    trip_id: str
    rule: str
    anchor: int | None = None

    def __str__(self) -> str:
        anchor = "" if self.anchor is None else f"@{self.anchor}"
        return f"{self.rule}:{self.trip_id}{anchor}"


@dataclass(frozen=True)
class SentFix:
    """A fix as it was uploaded."""

    recorded_at: datetime
    lat: float
    lon: float
    speed_kmh: float
    accuracy_m: float


@dataclass
class TripRecord:
    """What the fleet knows of one of its trips: the plan as sent, and the batches accepted."""

    trip_id: str
    plane: Plane
    route: Polyline
    started_at: datetime
    planned_arrival: datetime
    speed_limit_kmh: float | None
    corridor_m: float | None
    batches: list[list[SentFix]]


@dataclass(frozen=True)
class Rules:
    """The rule settings of the deployment the fleet drives against."""

    alert_window_s: int = 300
    late_grace_s: int = 300
    lost_signal_after_s: int = 600


def windowed(hits: Iterable[datetime], raised: list[datetime], window: timedelta) -> list[datetime]:
    """The first-fix times of the new alerts for violating fixes `hits` of one batch, given the
    anchors of the alerts `raised` before it (which this extends)."""
    opened: list[datetime] = []
    for at in sorted(hits):
        if opened and at - opened[-1] < window:
            continue  # part of the alert opened just before
        if all(abs(at - anchor) >= window for anchor in raised):
            opened.append(at)
    raised.extend(opened)
    return opened


def expected_alerts(trip: TripRecord, rules: Rules) -> list[AlertKey]:
    """The alerts `trip`'s batches must raise, in the order they would be raised."""
    window = timedelta(seconds=rules.alert_window_s)
    speeding: list[datetime] = []
    corridor: list[datetime] = []
    late = False
    last_seen: datetime | None = None
    odometer = Odometer(trip.plane)
    keys: list[AlertKey] = []
    for batch in trip.batches:
        fixes = sorted(
            (fix for fix in batch if fix.recorded_at >= trip.started_at),
            key=lambda fix: fix.recorded_at,
        )
        if not fixes:
            continue
        if trip.speed_limit_kmh is not None:
            limit = trip.speed_limit_kmh
            over = [fix.recorded_at for fix in fixes if fix.speed_kmh > limit]
            keys += [_key(trip, "speeding", at) for at in windowed(over, speeding, window)]
        if trip.corridor_m is not None:
            outside = [
                fix.recorded_at
                for fix in fixes
                if _off_route(trip, fix) - fix.accuracy_m > trip.corridor_m
            ]
            keys += [_key(trip, "corridor", at) for at in windowed(outside, corridor, window)]
        newer = [fix for fix in fixes if last_seen is None or fix.recorded_at > last_seen]
        if newer:
            last_seen = newer[-1].recorded_at
            odometer.drive(newer)
            if not late and _is_late(trip, newer, odometer.metres, rules):
                late = True
                keys.append(AlertKey(trip.trip_id, "late"))
    return keys


def _key(trip: TripRecord, rule: str, at: datetime) -> AlertKey:
    return AlertKey(trip.trip_id, rule, int(at.timestamp()))


def _off_route(trip: TripRecord, fix: SentFix) -> float:
    return trip.route.locate(*trip.plane.to_xy(fix.lat, fix.lon)).off_m


@dataclass
class Odometer:
    """The distance a trip's fixes cover, one after the other; inaccurate fixes are skipped."""

    plane: Plane
    metres: float = 0.0
    here: tuple[float, float] | None = None

    def drive(self, fixes: Iterable[SentFix]) -> None:
        for fix in fixes:
            if fix.accuracy_m > MAX_ACCURACY_FOR_DISTANCE_M:
                continue
            there = self.plane.to_xy(fix.lat, fix.lon)
            if self.here is not None:
                self.metres += math.dist(self.here, there)
            self.here = there


def _is_late(trip: TripRecord, newer: Sequence[SentFix], driven_m: float, rules: Rules) -> bool:
    last = newer[-1]
    remaining = trip.route.locate(*trip.plane.to_xy(last.lat, last.lon)).remaining_m
    recent = sum(fix.speed_kmh for fix in newer) / len(newer)
    elapsed = (last.recorded_at - trip.started_at).total_seconds()
    too_soon = elapsed < MIN_TRIP_SECONDS_FOR_ETA
    speed = 0.0 if too_soon else max(recent, driven_m / elapsed * 3.6)
    if remaining <= ARRIVED_WITHIN_M:
        expected = last.recorded_at
    elif speed >= MIN_SPEED_FOR_ETA_KMH:
        expected = last.recorded_at + timedelta(seconds=remaining / (speed / 3.6))
    else:
        expected = last.recorded_at  # at best it arrives now
    return (expected - trip.planned_arrival).total_seconds() > rules.late_grace_s
