"""`alerts/rules.py`, pure: which fixes raise which alert, at what severity, under which
identity (no database, no Redis: fixes in, drafts out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tripline_common.data.models import AlertRule, AlertSeverity
from tripline_worker.alerts.rules import (
    CRITICAL_CORRIDOR_FACTOR,
    CRITICAL_SPEEDING_FACTOR,
    AlertDraft,
    corridor_alerts,
    late_alert,
    lost_signal_alert,
    speeding_alerts,
)
from tripline_worker.geo import Route
from tripline_worker.trips.progress import ARRIVED_WITHIN_M, Fix

TRIP = "trip-1"
WINDOW = 300
# A multiple of WINDOW in Unix time: where a window fixed to the clock would start.
T0 = datetime.fromtimestamp(1_800_000_000 - 1_800_000_000 % WINDOW, UTC)
ROUTE = Route([(0.0, 0.0), (0.0, 0.1)])  # ~11 km along the equator.


def at(seconds: float, *, speed: float | None = None, lat: float = 0.0, lon: float = 0.05) -> Fix:
    return Fix(T0 + timedelta(seconds=seconds), lat, lon, speed)


# --- speeding -----------------------------------------------------------------------------------


def test_driving_exactly_at_the_speed_limit_raises_nothing() -> None:
    assert speeding_alerts(TRIP, 100.0, [at(0, speed=100.0), at(5, speed=None)], WINDOW) == []


def test_just_over_the_limit_is_a_warning_and_at_the_critical_factor_it_is_critical() -> None:
    limit = 100.0
    critical = limit * CRITICAL_SPEEDING_FACTOR
    (over,) = speeding_alerts(TRIP, limit, [at(0, speed=100.1)], WINDOW)
    (below_critical,) = speeding_alerts(TRIP, limit, [at(0, speed=critical - 0.1)], WINDOW)
    (at_critical,) = speeding_alerts(TRIP, limit, [at(0, speed=critical)], WINDOW)

    assert over.rule is AlertRule.SPEEDING
    assert over.severity is AlertSeverity.WARNING
    assert below_critical.severity is AlertSeverity.WARNING
    assert at_critical.severity is AlertSeverity.CRITICAL


def test_speeding_in_one_window_is_one_alert_about_the_fastest_fix() -> None:
    fixes = [at(0, speed=110.0, lon=0.01), at(60, speed=130.0, lon=0.02), at(120, speed=90.0)]

    (draft,) = speeding_alerts(TRIP, 100.0, fixes, WINDOW)

    assert draft.dedupe_key == f"speeding:{TRIP}:{int(T0.timestamp())}"
    assert draft.details["speed_kmh"] == 130.0
    assert draft.details["fixes_over_limit"] == 2
    assert draft.details["first_at"] == fixes[0].recorded_at.isoformat()
    assert draft.details["at"] == fixes[1].recorded_at.isoformat()
    assert draft.details["lon"] == 0.02


def test_a_burst_crossing_a_multiple_of_the_window_is_one_alert() -> None:
    # 250 s of speeding from 100 s before a clock boundary to 150 s after it.
    burst = [at(second, speed=120.0) for second in range(-100, 151, 10)]

    (draft,) = speeding_alerts(TRIP, 100.0, burst, WINDOW)

    assert draft.dedupe_key == f"speeding:{TRIP}:{int(T0.timestamp()) - 100}"
    assert draft.observed_at == burst[0].recorded_at
    assert draft.details["fixes_over_limit"] == len(burst)


def test_speeding_a_window_after_an_alerts_first_fix_is_a_new_alert() -> None:
    drafts = speeding_alerts(
        TRIP,
        100.0,
        [at(0, speed=120.0), at(WINDOW - 1, speed=150.0), at(WINDOW, speed=120.0)],
        WINDOW,
    )

    assert [draft.dedupe_key for draft in drafts] == [
        f"speeding:{TRIP}:{int(T0.timestamp())}",
        f"speeding:{TRIP}:{int(T0.timestamp()) + WINDOW}",
    ]
    assert [draft.details["fixes_over_limit"] for draft in drafts] == [2, 1]


def test_a_continuous_episode_is_one_alert_per_window_of_it() -> None:
    ten_minutes = [at(second, speed=120.0) for second in range(0, 600, 5)]

    drafts = speeding_alerts(TRIP, 100.0, ten_minutes, WINDOW)

    assert [draft.observed_at for draft in drafts] == [T0, T0 + timedelta(seconds=WINDOW)]


def test_speeding_near_an_alert_already_raised_before_or_after_raises_nothing() -> None:
    raised = [T0]

    assert speeding_alerts(TRIP, 100.0, [at(WINDOW - 1, speed=120.0)], WINDOW, raised) == []
    # A device's backlog arriving late, just before the stored alert's first fix.
    assert speeding_alerts(TRIP, 100.0, [at(-(WINDOW - 1), speed=120.0)], WINDOW, raised) == []
    (later,) = speeding_alerts(TRIP, 100.0, [at(WINDOW, speed=120.0)], WINDOW, raised)
    (earlier,) = speeding_alerts(TRIP, 100.0, [at(-WINDOW, speed=120.0)], WINDOW, raised)
    assert later.observed_at == T0 + timedelta(seconds=WINDOW)
    assert earlier.observed_at == T0 - timedelta(seconds=WINDOW)


def test_the_same_fixes_judged_twice_build_the_same_identity() -> None:
    fixes = [at(10, speed=120.0), at(200, speed=140.0)]

    # The insert's ON CONFLICT (dedupe_key) then keeps one alert, however often they are judged.
    assert speeding_alerts(TRIP, 100.0, fixes, WINDOW) == speeding_alerts(
        TRIP, 100.0, list(reversed(fixes)), WINDOW
    )


# --- corridor -----------------------------------------------------------------------------------


def off_route(metres: float) -> Fix:
    """A fix beside the middle of ROUTE, `metres` (about) north of it."""
    return Fix(T0, metres / 111_195, 0.05)


def test_a_fix_exactly_on_the_corridor_edge_is_inside_and_a_hair_beyond_is_outside() -> None:
    fix = off_route(150)
    edge = ROUTE.locate(fix.lat, fix.lon).off_route_m

    assert corridor_alerts(TRIP, edge, ROUTE, [fix], WINDOW) == []
    (outside,) = corridor_alerts(TRIP, edge - 0.01, ROUTE, [fix], WINDOW)
    assert outside.rule is AlertRule.CORRIDOR
    assert outside.dedupe_key == f"corridor:{TRIP}:{int(T0.timestamp())}"


def test_leaving_the_corridor_follows_the_same_sliding_window_as_speeding() -> None:
    corridor = 100.0
    burst = [off_route(500)._replace(recorded_at=T0 + timedelta(seconds=s)) for s in (-60, 60)]

    (draft,) = corridor_alerts(TRIP, corridor, ROUTE, burst, WINDOW)
    assert draft.observed_at == T0 - timedelta(seconds=60)
    assert (
        corridor_alerts(TRIP, corridor, ROUTE, burst, WINDOW, [T0 + timedelta(seconds=200)]) == []
    )


def test_a_fix_whose_accuracy_circle_reaches_the_corridor_gets_the_benefit_of_the_doubt() -> None:
    fix = off_route(150)
    off = ROUTE.locate(fix.lat, fix.lon).off_route_m
    corridor = 100.0

    reaching = fix._replace(accuracy_m=off - corridor)
    short = fix._replace(accuracy_m=off - corridor - 1)

    assert corridor_alerts(TRIP, corridor, ROUTE, [reaching], WINDOW) == []
    (draft,) = corridor_alerts(TRIP, corridor, ROUTE, [short], WINDOW)
    assert draft.details["off_route_m"] == pytest.approx(corridor + 1, abs=0.1)


def test_leaving_the_corridor_by_its_critical_factor_is_critical() -> None:
    corridor = 100.0
    far = off_route(corridor * CRITICAL_CORRIDOR_FACTOR + 5)
    near = off_route(corridor * CRITICAL_CORRIDOR_FACTOR - 5)

    (critical,) = corridor_alerts(TRIP, corridor, ROUTE, [far], WINDOW)
    (warning,) = corridor_alerts(TRIP, corridor, ROUTE, [near], WINDOW)

    assert critical.severity is AlertSeverity.CRITICAL
    assert warning.severity is AlertSeverity.WARNING


# --- late ---------------------------------------------------------------------------------------

PLANNED = T0 + timedelta(hours=2)
GRACE = 600


def late(
    eta: datetime | None, *, remaining_m: float | None = 5_000, last_fix_at: datetime = T0
) -> AlertDraft | None:
    return late_alert(
        TRIP,
        PLANNED,
        eta=eta,
        last_fix_at=last_fix_at,
        remaining_m=remaining_m,
        grace_seconds=GRACE,
    )


def test_an_eta_exactly_at_the_end_of_the_grace_period_is_not_late() -> None:
    assert late(PLANNED + timedelta(seconds=GRACE)) is None


def test_an_eta_a_second_past_the_grace_period_is_late_once_per_trip() -> None:
    draft = late(PLANNED + timedelta(seconds=GRACE + 1))

    assert draft is not None
    assert draft.rule is AlertRule.LATE
    assert draft.dedupe_key == f"late:{TRIP}"
    assert draft.details["late_by_seconds"] == GRACE + 1


def test_without_an_eta_a_trip_still_travelling_past_its_arrival_is_late() -> None:
    # No ETA (parked): at best it arrives now, at its last fix.
    assert late(None, last_fix_at=PLANNED + timedelta(seconds=GRACE + 1)) is not None
    assert late(None, last_fix_at=PLANNED + timedelta(seconds=GRACE)) is None


def test_a_trip_that_arrived_without_an_eta_is_never_late() -> None:
    last = PLANNED + timedelta(hours=5)
    assert late(None, remaining_m=ARRIVED_WITHIN_M, last_fix_at=last) is None
    assert late(None, remaining_m=ARRIVED_WITHIN_M + 1, last_fix_at=last) is not None


# --- lost signal --------------------------------------------------------------------------------


def test_one_silence_is_one_alert_and_a_new_silence_is_a_new_one() -> None:
    first = lost_signal_alert(TRIP, T0, T0 + timedelta(minutes=20))
    same_silence_later = lost_signal_alert(TRIP, T0, T0 + timedelta(minutes=40))
    next_silence = lost_signal_alert(TRIP, T0 + timedelta(hours=1), T0 + timedelta(hours=2))

    assert first.rule is AlertRule.LOST_SIGNAL
    assert first.severity is AlertSeverity.CRITICAL
    assert first.dedupe_key == same_silence_later.dedupe_key
    assert next_silence.dedupe_key != first.dedupe_key
    assert first.details["silent_seconds"] == 20 * 60
