"""The alert rules of a trip, as pure functions from fixes to alert drafts.

Each draft carries a deterministic `dedupe_key`, the alert's identity, built from the trip and
the device time of the violation, never from when or how often the worker ran:

- speeding: `speeding:<trip>:<time of its first fix>`, at most one alert per trip per
  `ALERT_WINDOW_SECONDS` of device time: a fix over the limit raises one unless the trip
  already has a speeding alert whose first fix is less than that far from it, before or after
  (the window slides with the alerts, it is not fixed to the clock, so a burst that crosses
  a multiple of 300 s is still one alert);
- corridor: `corridor:<trip>:<time of its first fix>`, the same for leaving the corridor;
- late: `late:<trip>`, once per trip;
- lost signal: `lost_signal:<trip>:<time of the last fix>`, once per silence (a new silence,
  after the device came back, is a new alert).

The windowed rules are told the first-fix times of the trip's alerts already stored
(`raised`). The caller holds the trip's row lock, so batches of one trip are judged one after
another against every alert committed before; and processing the same fixes again builds the
same drafts, which the insert's `ON CONFLICT (dedupe_key) DO NOTHING` drops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tripline_common.data.models import AlertRule, AlertSeverity
from tripline_worker.geo import Route
from tripline_worker.trips.progress import ARRIVED_WITHIN_M, Fix

# Speeding by this factor or more is critical rather than a warning.
CRITICAL_SPEEDING_FACTOR = 1.25
# Farther than this many corridor widths from the route is critical.
CRITICAL_CORRIDOR_FACTOR = 3.0


@dataclass(frozen=True)
class AlertDraft:
    """An alert about to be raised."""

    rule: AlertRule
    severity: AlertSeverity
    dedupe_key: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    observed_at: datetime | None = None
    """Device time of the first fix of a windowed alert (speeding, corridor): its window's
    anchor."""


def episodes(
    hits: Iterable[tuple[Fix, float]], raised: Iterable[datetime], window_seconds: int
) -> list[list[tuple[Fix, float]]]:
    """Group violating fixes into new alerts, at most one per `window_seconds` of device time.

    A fix opens a new alert unless an alert already raised (`raised`: their first fixes'
    times) or opened by an earlier fix here began less than `window_seconds` from it; the fixes
    that follow an opener within its window belong to it.
    """
    window = timedelta(seconds=window_seconds)
    stored = list(raised)
    groups: list[list[tuple[Fix, float]]] = []
    for hit in sorted(hits, key=lambda hit: hit[0].recorded_at):
        at = hit[0].recorded_at
        if groups and at - groups[-1][0][0].recorded_at < window:
            groups[-1].append(hit)
        elif all(abs(at - anchor) >= window for anchor in stored):
            groups.append([hit])
    return groups


def speeding_alerts(
    trip_id: object,
    limit_kmh: float,
    fixes: Sequence[Fix],
    window_seconds: int,
    raised: Iterable[datetime] = (),
) -> list[AlertDraft]:
    """At most one alert per `window_seconds` in which fixes were faster than `limit_kmh`,
    none within `window_seconds` of the trip's speeding alerts already `raised`."""
    over = [(fix, fix.speed_kmh) for fix in fixes if fix.speed_kmh is not None]
    over = [(fix, speed) for fix, speed in over if speed > limit_kmh]
    drafts = []
    for hits in episodes(over, raised, window_seconds):
        first = hits[0][0].recorded_at
        worst, top = max(hits, key=lambda hit: hit[1])
        drafts.append(
            AlertDraft(
                rule=AlertRule.SPEEDING,
                severity=AlertSeverity.CRITICAL
                if top >= limit_kmh * CRITICAL_SPEEDING_FACTOR
                else AlertSeverity.WARNING,
                dedupe_key=f"speeding:{trip_id}:{int(first.timestamp())}",
                message=f"{top:.0f} km/h, over the {limit_kmh:.0f} km/h limit.",
                details={
                    "speed_kmh": top,
                    "limit_kmh": limit_kmh,
                    "fixes_over_limit": len(hits),
                    "first_at": first.isoformat(),
                    "at": worst.recorded_at.isoformat(),
                    "lat": worst.lat,
                    "lon": worst.lon,
                },
                observed_at=first,
            )
        )
    return drafts


def corridor_alerts(
    trip_id: object,
    corridor_m: float,
    route: Route,
    fixes: Sequence[Fix],
    window_seconds: int,
    raised: Iterable[datetime] = (),
) -> list[AlertDraft]:
    """At most one alert per `window_seconds` in which fixes lay outside the corridor around
    the route, none within `window_seconds` of the trip's corridor alerts already `raised`.

    A fix's accuracy radius is given the benefit of the doubt: it is outside only if even the
    nearest point of its error circle is.
    """
    outside = []
    for fix, off_route_m in zip(fixes, route.off_route_m(fixes), strict=True):
        off = off_route_m - (fix.accuracy_m or 0.0)
        if off > corridor_m:
            outside.append((fix, off))
    drafts = []
    for hits in episodes(outside, raised, window_seconds):
        first = hits[0][0].recorded_at
        worst, farthest = max(hits, key=lambda hit: hit[1])
        drafts.append(
            AlertDraft(
                rule=AlertRule.CORRIDOR,
                severity=AlertSeverity.CRITICAL
                if farthest >= corridor_m * CRITICAL_CORRIDOR_FACTOR
                else AlertSeverity.WARNING,
                dedupe_key=f"corridor:{trip_id}:{int(first.timestamp())}",
                message=f"{farthest:.0f} m off the planned route (corridor {corridor_m:.0f} m).",
                details={
                    "off_route_m": round(farthest, 1),
                    "corridor_m": corridor_m,
                    "fixes_outside": len(hits),
                    "first_at": first.isoformat(),
                    "at": worst.recorded_at.isoformat(),
                    "lat": worst.lat,
                    "lon": worst.lon,
                },
                observed_at=first,
            )
        )
    return drafts


def late_alert(
    trip_id: object,
    planned_arrival: datetime,
    *,
    eta: datetime | None,
    last_fix_at: datetime,
    remaining_m: float | None,
    grace_seconds: int,
) -> AlertDraft | None:
    """An alert when the trip will arrive, or is still travelling, past its planned arrival
    plus the grace period."""
    arrived = remaining_m is not None and remaining_m <= ARRIVED_WITHIN_M
    if eta is not None:
        expected = eta
    elif not arrived:
        expected = last_fix_at  # At best it arrives now.
    else:
        return None
    late_by = (expected - planned_arrival).total_seconds()
    if late_by <= grace_seconds:
        return None
    return AlertDraft(
        rule=AlertRule.LATE,
        severity=AlertSeverity.WARNING,
        dedupe_key=f"late:{trip_id}",
        message=f"Running {late_by / 60:.0f} min late against the planned arrival.",
        details={
            "planned_arrival": planned_arrival.isoformat(),
            "eta": eta.isoformat() if eta else None,
            "late_by_seconds": round(late_by),
            "remaining_m": round(remaining_m, 1) if remaining_m is not None else None,
        },
    )


def lost_signal_alert(trip_id: object, last_fix_at: datetime, now: datetime) -> AlertDraft:
    """The alert for an active trip whose device has been silent since `last_fix_at`."""
    silent = (now - last_fix_at).total_seconds()
    return AlertDraft(
        rule=AlertRule.LOST_SIGNAL,
        severity=AlertSeverity.CRITICAL,
        dedupe_key=f"lost_signal:{trip_id}:{int(last_fix_at.timestamp())}",
        message=f"No telemetry for {silent / 60:.0f} min.",
        details={"last_seen_at": last_fix_at.isoformat(), "silent_seconds": round(silent)},
    )
