"""`trips/progress.py`, pure: how a batch of fixes moves a trip's position, odometer and ETA
(no database: a progress and fixes in, the next progress out), and why writing it stays cheap."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tripline_common.data.models import Trip
from tripline_worker.geo import Route, haversine_m
from tripline_worker.trips.progress import (
    ARRIVED_WITHIN_M,
    MAX_ACCURACY_FOR_DISTANCE_M,
    MIN_SPEED_FOR_ETA_KMH,
    MIN_TRIP_SECONDS_FOR_ETA,
    Fix,
    TripProgress,
    advance_progress,
)

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
ROUTE = Route([(0.0, 0.0), (0.0, 0.1)])  # ~11 km east along the equator.
START = TripProgress(last_lat=None, last_lon=None, last_seen_at=None, distance_m=0.0, eta=None)


def fix(
    seconds: float, lon: float, *, speed: float | None = None, accuracy: float | None = None
) -> Fix:
    return Fix(T0 + timedelta(seconds=seconds), 0.0, lon, speed, accuracy)


def test_the_first_fixes_set_the_position_and_count_the_distance_between_them() -> None:
    fixes = [fix(0, 0.0), fix(60, 0.01), fix(120, 0.02)]

    progress = advance_progress(START, fixes, ROUTE, started_at=T0)

    assert (progress.last_lat, progress.last_lon, progress.last_seen_at) == (
        0.0,
        0.02,
        fixes[-1].recorded_at,
    )
    assert progress.distance_m == pytest.approx(haversine_m(0, 0, 0, 0.02))
    assert progress.remaining_m == pytest.approx(ROUTE.length_m - haversine_m(0, 0, 0, 0.02), abs=1)


def test_distance_continues_from_the_last_known_position() -> None:
    before = advance_progress(START, [fix(0, 0.0), fix(60, 0.01)], ROUTE, started_at=T0)

    after = advance_progress(before, [fix(120, 0.02)], ROUTE, started_at=T0)

    assert after.distance_m == pytest.approx(haversine_m(0, 0, 0, 0.02))


def test_a_late_batch_no_newer_than_the_last_fix_leaves_the_progress_as_it_was() -> None:
    before = advance_progress(START, [fix(0, 0.0), fix(60, 0.01)], ROUTE, started_at=T0)

    # One fix at exactly the last fix's time, one older: a backlog uploaded out of order.
    after = advance_progress(before, [fix(30, 0.05), fix(60, 0.06)], ROUTE, started_at=T0)

    assert after is before


def test_a_fix_at_the_accuracy_limit_moves_the_odometer_and_one_beyond_it_does_not() -> None:
    at_limit = advance_progress(
        START,
        [fix(0, 0.0), fix(60, 0.01, accuracy=MAX_ACCURACY_FOR_DISTANCE_M)],
        ROUTE,
        started_at=T0,
    )
    beyond = advance_progress(
        START,
        [fix(0, 0.0), fix(60, 0.01, accuracy=MAX_ACCURACY_FOR_DISTANCE_M + 0.1)],
        ROUTE,
        started_at=T0,
    )

    assert at_limit.distance_m == pytest.approx(haversine_m(0, 0, 0, 0.01))
    assert beyond.distance_m == 0.0
    assert beyond.last_lon == 0.01  # The position still moves: only the odometer ignores it.


def test_an_inaccurate_fix_is_not_where_the_next_distance_is_measured_from() -> None:
    fixes = [fix(0, 0.0), fix(30, 0.05, accuracy=500), fix(60, 0.01)]

    progress = advance_progress(START, fixes, ROUTE, started_at=T0)

    assert progress.distance_m == pytest.approx(haversine_m(0, 0, 0, 0.01))


def test_the_eta_is_the_remaining_route_at_the_reported_speed() -> None:
    last = fix(60, 0.0, speed=36.0)  # 10 m/s from the start of the route.

    progress = advance_progress(START, [last], ROUTE, started_at=T0)

    assert progress.eta is not None
    expected = last.recorded_at + timedelta(seconds=ROUTE.length_m / 10)
    assert abs((progress.eta - expected).total_seconds()) < 1


def test_without_reported_speeds_the_eta_uses_the_average_speed_since_the_start() -> None:
    # 0.01 degrees (~1.1 km) in 111.2 s: ~10 m/s on average.
    metres = haversine_m(0, 0, 0, 0.01)
    fixes = [fix(0, 0.0), fix(metres / 10, 0.01)]

    progress = advance_progress(START, fixes, ROUTE, started_at=T0)

    assert progress.eta is not None and progress.remaining_m is not None
    expected = fixes[-1].recorded_at + timedelta(seconds=progress.remaining_m / 10)
    assert abs((progress.eta - expected).total_seconds()) < 1


def test_a_batch_braking_to_a_stop_takes_the_trips_average_pace_not_its_own() -> None:
    # ~1.1 km in 111 s at 10 m/s, then a batch that brakes into a junction (mean 2 m/s): its
    # own pace would put the arrival five times as far away as the trip's pace does.
    metres = haversine_m(0, 0, 0, 0.01)
    cruising = advance_progress(
        START, [fix(0, 0.0, speed=36.0), fix(metres / 10, 0.01, speed=36.0)], ROUTE, started_at=T0
    )
    braking = [
        fix(metres / 10 + 2, 0.01 + 0.00001 * n, speed=speed)
        for n, speed in enumerate([14.4, 7.2, 0.0])
    ]

    progress = advance_progress(cruising, braking, ROUTE, started_at=T0)

    assert progress.eta is not None and progress.remaining_m is not None
    elapsed = (braking[-1].recorded_at - T0).total_seconds()
    average_ms = progress.distance_m / elapsed
    expected = braking[-1].recorded_at + timedelta(seconds=progress.remaining_m / average_ms)
    assert abs((progress.eta - expected).total_seconds()) < 1
    assert 9 < average_ms < 10  # The trip's pace, not the batch's 2 m/s.


def test_a_batch_faster_than_the_trips_average_sets_the_pace() -> None:
    # A slow start (a jam: ~1.1 km in 555 s, 2 m/s), then a batch at 20 m/s.
    metres = haversine_m(0, 0, 0, 0.01)
    jammed = advance_progress(START, [fix(0, 0.0), fix(metres / 2, 0.01)], ROUTE, started_at=T0)
    last = fix(metres / 2 + 10, 0.0118, speed=72.0)

    progress = advance_progress(jammed, [last], ROUTE, started_at=T0)

    assert progress.eta is not None and progress.remaining_m is not None
    expected = last.recorded_at + timedelta(seconds=progress.remaining_m / 20)
    assert abs((progress.eta - expected).total_seconds()) < 1


def test_below_the_minimum_speed_there_is_no_eta_and_at_it_there_is_one() -> None:
    at = MIN_TRIP_SECONDS_FOR_ETA
    crawling = advance_progress(
        START, [fix(at, 0.0, speed=MIN_SPEED_FOR_ETA_KMH - 0.01)], ROUTE, started_at=T0
    )
    slow = advance_progress(
        START, [fix(at, 0.0, speed=MIN_SPEED_FOR_ETA_KMH)], ROUTE, started_at=T0
    )

    assert crawling.eta is None
    assert slow.eta is not None


def test_in_the_trips_first_minute_there_is_no_eta_whatever_the_pace() -> None:
    just_short = fix(MIN_TRIP_SECONDS_FOR_ETA - 1, 0.0, speed=36.0)
    at_it = fix(MIN_TRIP_SECONDS_FOR_ETA, 0.0, speed=36.0)

    assert advance_progress(START, [just_short], ROUTE, started_at=T0).eta is None
    assert advance_progress(START, [at_it], ROUTE, started_at=T0).eta is not None


def test_within_the_arrival_distance_of_the_end_the_eta_is_the_last_fix() -> None:
    metres_per_degree = ROUTE.length_m / 0.1
    inside = fix(60, 0.1 - (ARRIVED_WITHIN_M - 1) / metres_per_degree, speed=0.0)
    outside = fix(60, 0.1 - (ARRIVED_WITHIN_M + 1) / metres_per_degree, speed=0.0)

    arrived = advance_progress(START, [inside], ROUTE, started_at=T0)
    parked_short = advance_progress(START, [outside], ROUTE, started_at=T0)

    assert arrived.eta == inside.recorded_at
    assert parked_short.eta is None  # Stopped 51 m short: not arrived, and no speed to guess.


def test_no_index_of_trips_holds_a_column_the_progress_update_writes() -> None:
    # Every batch rewrites its trip's progress; with none of those columns indexed, PostgreSQL
    # can update the row in place (HOT) instead of adding an entry to each trips index.
    written = {field.name for field in dataclasses.fields(TripProgress)} | {"updated_at"}
    indexes = Trip.__table__.indexes  # type: ignore[attr-defined]
    indexed = {column.name for index in indexes for column in index.columns} | {
        str(name)
        for index in indexes
        for name in index.dialect_options["postgresql"]["include"] or ()
    }
    predicates = " ".join(str(index.dialect_options["postgresql"]["where"]) for index in indexes)
    assert written & {c.name for c in Trip.__table__.columns}  # type: ignore[attr-defined]
    assert not written & indexed
    assert not any(name in predicates for name in written)
