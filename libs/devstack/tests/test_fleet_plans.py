"""The fleet's pure parts: the trips it plans (deterministic, road-like, with the mischief
asked for) and the alerts it expects from what it sent."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tripline_devstack.fleet import Mischief, Rules, TripRecord, expected_alerts, plan_trip
from tripline_devstack.fleet.driving import ACCURACY_M, CORRIDOR_MARGIN_M
from tripline_devstack.fleet.expectations import AlertKey, SentFix
from tripline_devstack.fleet.geometry import Plane, Polyline

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def off_route(plan, fix) -> float:
    return plan.route.locate(*plan.plane.to_xy(fix.lat, fix.lon)).off_m


def test_the_same_seed_plans_the_same_trip_and_another_seed_another() -> None:
    one, again = (plan_trip("7:0:0", "a", Mischief(speeding=True)) for _ in range(2))
    assert (again.route.points, again.fixes, again.uploads) == (
        one.route.points,
        one.fixes,
        one.uploads,
    )
    assert plan_trip("7:1:0", "a", Mischief(speeding=True)).route.points != one.route.points


def test_a_trip_drives_the_grid_from_standstill_to_standstill_within_the_limit() -> None:
    plan = plan_trip(3, "calm", Mischief())
    points = plan.route.points
    assert all((a[0] == b[0]) != (a[1] == b[1]) for a, b in itertools.pairwise(points)), (
        "every run is straight along the grid"
    )
    assert plan.fixes[0].speed_kmh == plan.fixes[-1].speed_kmh == 0
    assert [fix.at_s for fix in plan.fixes] == [float(i) for i in range(len(plan.fixes))]
    assert max(fix.speed_kmh for fix in plan.fixes) <= plan.speed_limit_kmh
    assert all(off_route(plan, fix) < plan.corridor_m / 2 for fix in plan.fixes)


def test_mischief_speeds_leaves_the_corridor_and_loses_the_signal_as_asked() -> None:
    plan = plan_trip(5, "wild", Mischief(speeding=True, deviation=True, signal_loss=True))
    assert any(fix.speed_kmh > plan.speed_limit_kmh for fix in plan.fixes)
    outside = [off_route(plan, fix) - ACCURACY_M - plan.corridor_m for fix in plan.fixes]
    assert any(distance > 0 for distance in outside)
    assert all(abs(distance) >= CORRIDOR_MARGIN_M for distance in outside)
    assert len(plan.gaps) == 1
    # Every fix is uploaded once, in order, the backlog in one batch after the silence.
    covered = [i for upload in plan.uploads for i in range(upload.first, upload.last + 1)]
    assert covered == list(range(len(plan.fixes)))
    assert max(upload.last - upload.first for upload in plan.uploads) > 5


def test_a_late_trip_is_planned_to_arrive_before_it_can() -> None:
    plan = plan_trip(5, "late", Mischief(late=True), late_grace_s=300)
    assert plan.arrival_offset_s + 300 < plan.duration_s


# -- expectations --------------------------------------------------------------------------


LINE = Polyline([(0.0, 0.0), (1000.0, 0.0)])
PLANE = Plane()


def fix_at(second: int, x: float, y: float = 0.0, speed: float = 40.0) -> SentFix:
    lat, lon = PLANE.to_lat_lon(x, y)
    return SentFix(START + timedelta(seconds=second), lat, lon, speed, 5.0)


def record(*batches: list[SentFix], arrival_s: int = 3600) -> TripRecord:
    return TripRecord(
        trip_id="t",
        plane=PLANE,
        route=LINE,
        started_at=START,
        planned_arrival=START + timedelta(seconds=arrival_s),
        speed_limit_kmh=50.0,
        corridor_m=60.0,
        batches=list(batches),
    )


def anchor(second: int) -> int:
    return int((START + timedelta(seconds=second)).timestamp())


def test_speeding_is_one_alert_per_window_across_batches_anchored_at_its_first_fix() -> None:
    rules = Rules(alert_window_s=30)
    trip = record(
        [fix_at(1, 10, speed=60), fix_at(2, 20, speed=60)],
        [fix_at(20, 200, speed=61), fix_at(31, 300, speed=40)],  # within 30 s of the first
        [fix_at(40, 400, speed=70)],  # 39 s after it: a new alert
    )
    assert expected_alerts(trip, rules) == [
        AlertKey("t", "speeding", anchor(1)),
        AlertKey("t", "speeding", anchor(40)),
    ]


def test_leaving_the_corridor_counts_the_fixes_accuracy_in_its_favour() -> None:
    # 64.9 m off with a 5 m accuracy radius: 59.9 m, inside the 60 m corridor.
    trip = record([fix_at(1, 100, y=20.0), fix_at(2, 110, y=64.9), fix_at(3, 120, y=80.0)])
    assert expected_alerts(trip, Rules()) == [AlertKey("t", "corridor", anchor(3))]


def test_late_once_when_the_estimated_arrival_passes_the_plan_and_the_grace() -> None:
    rules = Rules(late_grace_s=300)
    # 1000 m at 36 km/h (10 m/s) from second 61: arrival at about second 161.
    on_time = record([fix_at(61, 0, speed=36.0), fix_at(62, 10, speed=36.0)], arrival_s=0)
    assert expected_alerts(on_time, rules) == []
    slow = record(
        [fix_at(61, 0, speed=3.6), fix_at(62, 1, speed=3.6)],  # 1 m/s: ~1000 s to go
        [fix_at(63, 2, speed=3.6)],
        arrival_s=0,
    )
    assert expected_alerts(slow, rules) == [AlertKey("t", "late")]
    # The same crawl in the trip's first minute: no estimate yet, and the fix's own time is
    # within the plan and the grace.
    too_soon = record([fix_at(1, 0, speed=3.6), fix_at(2, 1, speed=3.6)], arrival_s=0)
    assert expected_alerts(too_soon, rules) == []
    parked = record([fix_at(1, 0, speed=0.0)], arrival_s=0)  # no ETA: the fix's own time
    assert expected_alerts(parked, rules) == []
