"""The alert rules of a trip, as pure functions from fixes to alert drafts.

Each draft carries a deterministic `dedupe_key`, the alert's identity, built from the trip and
the device time of the violation, never from when or how often the worker ran:

- speeding: `speeding:<trip>:<window start>`, at most one alert per trip per window
  (`ALERT_WINDOW_SECONDS` of device time);
- corridor: `corridor:<trip>:<window start>`, the same for leaving the corridor;
- late: `late:<trip>`, once per trip;
- lost signal: `lost_signal:<trip>:<time of the last fix>`, once per silence (a new silence,
  after the device came back, is a new alert).

Alerts are inserted with `ON CONFLICT (dedupe_key) DO NOTHING`: processing a batch twice, or two
batches of one window, raises each alert once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


def window_start(moment: datetime, window_seconds: int) -> int:
    """The Unix time at which the window holding `moment` starts."""
    epoch = int(moment.timestamp())
    return epoch - epoch % window_seconds


def _by_window(
    fixes: Iterable[tuple[Fix, float]], window_seconds: int
) -> dict[int, list[tuple[Fix, float]]]:
    windows: dict[int, list[tuple[Fix, float]]] = {}
    for fix, value in fixes:
        windows.setdefault(window_start(fix.recorded_at, window_seconds), []).append((fix, value))
    return windows


def speeding_alerts(
    trip_id: object, limit_kmh: float, fixes: Sequence[Fix], window_seconds: int
) -> list[AlertDraft]:
    """One alert per window in which a fix was faster than `limit_kmh`."""
    over = [(fix, fix.speed_kmh) for fix in fixes if fix.speed_kmh is not None]
    over = [(fix, speed) for fix, speed in over if speed > limit_kmh]
    drafts = []
    for start, hits in sorted(_by_window(over, window_seconds).items()):
        worst, top = max(hits, key=lambda hit: hit[1])
        drafts.append(
            AlertDraft(
                rule=AlertRule.SPEEDING,
                severity=AlertSeverity.CRITICAL
                if top >= limit_kmh * CRITICAL_SPEEDING_FACTOR
                else AlertSeverity.WARNING,
                dedupe_key=f"speeding:{trip_id}:{start}",
                message=f"{top:.0f} km/h, over the {limit_kmh:.0f} km/h limit.",
                details={
                    "speed_kmh": top,
                    "limit_kmh": limit_kmh,
                    "fixes_over_limit": len(hits),
                    "first_at": hits[0][0].recorded_at.isoformat(),
                    "at": worst.recorded_at.isoformat(),
                    "lat": worst.lat,
                    "lon": worst.lon,
                },
            )
        )
    return drafts


def corridor_alerts(
    trip_id: object,
    corridor_m: float,
    route: Route,
    fixes: Sequence[Fix],
    window_seconds: int,
) -> list[AlertDraft]:
    """One alert per window in which a fix lay outside the corridor around the route.

    A fix's accuracy radius is given the benefit of the doubt: it is outside only if even the
    nearest point of its error circle is.
    """
    outside = []
    for fix in fixes:
        off = route.locate(fix.lat, fix.lon).off_route_m - (fix.accuracy_m or 0.0)
        if off > corridor_m:
            outside.append((fix, off))
    drafts = []
    for start, hits in sorted(_by_window(outside, window_seconds).items()):
        worst, farthest = max(hits, key=lambda hit: hit[1])
        drafts.append(
            AlertDraft(
                rule=AlertRule.CORRIDOR,
                severity=AlertSeverity.CRITICAL
                if farthest >= corridor_m * CRITICAL_CORRIDOR_FACTOR
                else AlertSeverity.WARNING,
                dedupe_key=f"corridor:{trip_id}:{start}",
                message=f"{farthest:.0f} m off the planned route (corridor {corridor_m:.0f} m).",
                details={
                    "off_route_m": round(farthest, 1),
                    "corridor_m": corridor_m,
                    "fixes_outside": len(hits),
                    "first_at": hits[0][0].recorded_at.isoformat(),
                    "at": worst.recorded_at.isoformat(),
                    "lat": worst.lat,
                    "lon": worst.lon,
                },
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
