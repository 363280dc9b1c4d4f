"""Trips the simulated devices drive, built offline and deterministically from a seed: a route
on a synthetic street grid around a city, a speed profile (accelerating, cruising, stopping at
junctions), the mischief of the trip (speeding, leaving the corridor, running late, losing the
signal) and how its fixes are uploaded (batches, gzip, resends after a timeout).

Nothing here touches the network: `plan_trip` is a pure function of its arguments.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from tripline_devstack.fleet.geometry import Plane, Polyline

BLOCK_M = 150.0  # the grid's spacing: a junction every 150 m
GRID_RADIUS_BLOCKS = 20  # routes start within 3 km of the centre
ACCELERATION = 2.0  # m/s², pulling away
DECELERATION = 3.0  # m/s², braking for a junction
GPS_NOISE_M = 2.0  # standard deviation of the position noise (clipped at twice that)
ACCURACY_M = 5.0  # the accuracy radius every fix reports
# No fix lies within this of the corridor's edge (once its accuracy is counted), so that the
# simulator's geometry and the worker's cannot disagree about which side it is on.
CORRIDOR_MARGIN_M = 3.0


@dataclass(frozen=True)
class Mischief:
    """What goes wrong on a trip."""

    speeding: bool = False
    deviation: bool = False
    late: bool = False
    signal_loss: bool = False


@dataclass(frozen=True)
class SimFix:
    """One fix as the device records it; `at_s`: seconds of device time after the start."""

    at_s: float
    lat: float
    lon: float
    speed_kmh: float
    accuracy_m: float = ACCURACY_M


@dataclass(frozen=True)
class Upload:
    """One batch: the fixes `first` to `last` (inclusive), how it is sent."""

    first: int
    last: int
    gzip: bool = False
    resend_after_timeout: bool = False


@dataclass(frozen=True)
class TripPlan:
    """Everything about one trip, known before it starts."""

    name: str
    plane: Plane
    route: Polyline  # in the plane, origin to destination through the corners
    speed_limit_kmh: float
    corridor_m: float
    planned_duration_s: float
    """Planned arrival minus planned start."""
    arrival_offset_s: float
    """Planned arrival minus the actual start (negative: late before it starts)."""
    mischief: Mischief
    fixes: list[SimFix]
    uploads: list[Upload]
    gaps: list[tuple[float, float]] = field(default_factory=list)
    """Device-time spans (s) without an upload: the signal was lost."""

    def lat_lon(self, index: int) -> tuple[float, float]:
        """A point of the route as (lat, lon)."""
        return self.plane.to_lat_lon(*self.route.points[index])

    @property
    def waypoints(self) -> list[tuple[float, float]]:
        """The route's corners between origin and destination, (lat, lon)."""
        return [self.lat_lon(i) for i in range(1, len(self.route.points) - 1)]

    @property
    def duration_s(self) -> float:
        """Device time from the start to the last fix."""
        return self.fixes[-1].at_s


def street_route(rng: random.Random, legs: int) -> tuple[list[tuple[float, float]], list[float]]:
    """A route along the grid: `legs` straight runs of 2 to 6 blocks, turning left or right
    at a junction between them. Returns its corners (plane metres) and the distances along it
    of every junction it passes."""
    x = rng.randint(-GRID_RADIUS_BLOCKS, GRID_RADIUS_BLOCKS) * BLOCK_M
    y = rng.randint(-GRID_RADIUS_BLOCKS, GRID_RADIUS_BLOCKS) * BLOCK_M
    heading = rng.choice([(1, 0), (0, 1), (-1, 0), (0, -1)])
    corners = [(x, y)]
    junctions: list[float] = []
    travelled = 0.0
    for leg in range(legs):
        if leg:
            heading = rng.choice([(-heading[1], heading[0]), (heading[1], -heading[0])])
        blocks = rng.randint(2, 6)
        for _ in range(blocks):
            x, y = x + heading[0] * BLOCK_M, y + heading[1] * BLOCK_M
            travelled += BLOCK_M
            junctions.append(travelled)
        corners.append((x, y))
    return corners, junctions[:-1]  # the last junction is the destination


def drive(
    rng: random.Random,
    route: Polyline,
    junctions: list[float],
    limit_kmh: float,
    speeding: tuple[float, float] | None,
    fix_interval_s: float,
) -> list[tuple[float, float, float]]:
    """Drive the route: (time s, distance m, speed m/s) every `fix_interval_s`, from the start
    to a standstill at the destination. Cruises a little under the limit (over it between the
    distances of `speeding`), stops at some junctions for a few seconds."""
    stops = [d for d in junctions if rng.random() < 0.3]
    if speeding is not None:
        stops = [d for d in stops if not speeding[0] - 100 <= d <= speeding[1]]
    stops.append(route.length_m)
    cruise = limit_kmh * rng.uniform(0.72, 0.88) / 3.6
    too_fast = limit_kmh * rng.uniform(1.2, 1.4) / 3.6
    t, s, v = 0.0, 0.0, 0.0
    samples = [(t, s, v)]
    dwell = 0.0
    while True:
        t += fix_interval_s
        if dwell > 0:
            dwell -= fix_interval_s
            samples.append((t, s, 0.0))
            continue
        target = too_fast if speeding and speeding[0] <= s <= speeding[1] else cruise
        to_stop = stops[0] - s
        v_new = min(
            v + ACCELERATION * fix_interval_s,
            target,
            math.sqrt(2 * DECELERATION * max(0.0, to_stop)),
        )
        step = (v + v_new) / 2 * fix_interval_s
        if to_stop <= max(1.0, step):
            s, v = stops.pop(0), 0.0
            samples.append((t, s, 0.0))
            if not stops:
                return samples
            dwell = rng.uniform(3, 10)
            continue
        s, v = s + step, v_new
        samples.append((t, s, v))


def lateral_offset(s: float, deviation: tuple[float, float] | None, corridor_m: float) -> float:
    """How far left of the route the vehicle is at distance `s`: a detour ramping out to 2.5
    corridor widths and back, skipping the band around the corridor's edge."""
    if deviation is None or not deviation[0] <= s <= deviation[1]:
        return 0.0
    ramp = 40.0
    share = min(1.0, (s - deviation[0]) / ramp, (deviation[1] - s) / ramp)
    offset = share * 2.5 * corridor_m
    if 0.5 * corridor_m < offset < 1.5 * corridor_m:
        offset = 1.5 * corridor_m if share > 0.5 else 0.5 * corridor_m
    return offset


def plan_trip(
    seed: int | str,
    name: str,
    mischief: Mischief,
    *,
    plane: Plane | None = None,
    legs: int = 3,
    fix_interval_s: float = 1.0,
    batch_fixes: int = 5,
    speed_limit_kmh: float = 50.0,
    corridor_m: float = 60.0,
    late_grace_s: float = 300.0,
    max_gap_s: float = 30.0,
) -> TripPlan:
    """The trip `seed` makes (the same seed, the same trip)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    plane = plane or Plane()
    corners, junctions = street_route(rng, legs)
    route = Polyline(corners)
    length = route.length_m
    speeding = (
        (length * 0.15, length * 0.15 + min(400.0, length * 0.3)) if mischief.speeding else None
    )
    deviation = (
        (length * 0.55, length * 0.55 + min(250.0, length * 0.2)) if mischief.deviation else None
    )
    samples = drive(rng, route, junctions, speed_limit_kmh, speeding, fix_interval_s)

    fixes = []
    for t, s, v in samples:
        (x, y), left = route.point_at(s)
        offset = lateral_offset(s, deviation, corridor_m)
        noise_x = max(-2 * GPS_NOISE_M, min(2 * GPS_NOISE_M, rng.gauss(0, GPS_NOISE_M)))
        noise_y = max(-2 * GPS_NOISE_M, min(2 * GPS_NOISE_M, rng.gauss(0, GPS_NOISE_M)))
        px, py = x + left[0] * offset + noise_x, y + left[1] * offset + noise_y
        outside = route.locate(px, py).off_m - ACCURACY_M - corridor_m
        if abs(outside) < CORRIDOR_MARGIN_M:  # Too close to the edge to call: step outward.
            push = 2 * CORRIDOR_MARGIN_M * (1 if offset > 0 else -1)
            px, py = px + left[0] * push, py + left[1] * push
        lat, lon = plane.to_lat_lon(px, py)
        fixes.append(SimFix(t, round(lat, 7), round(lon, 7), round(v * 3.6, 1)))

    uploads = [
        Upload(first, min(first + batch_fixes, len(fixes)) - 1)
        for first in range(0, len(fixes), batch_fixes)
    ]
    gaps: list[tuple[float, float]] = []
    if mischief.signal_loss and len(uploads) > 6:
        # The signal drops for a while after the first third: the fixes recorded meanwhile are
        # kept and go up in one backlog batch when it returns.
        first = len(uploads) // 3
        span = max(2, min(len(uploads) // 4, int(max_gap_s / (batch_fixes * fix_interval_s))))
        merged = Upload(uploads[first].first, uploads[first + span - 1].last)
        gaps.append((fixes[merged.first].at_s, fixes[merged.last].at_s))
        uploads = [*uploads[:first], merged, *uploads[first + span :]]
    uploads = [
        Upload(
            upload.first,
            upload.last,
            gzip=rng.random() < 0.3,
            resend_after_timeout=rng.random() < 0.15,
        )
        for upload in uploads
    ]

    duration = fixes[-1].at_s
    # Late: planned too tight, late from its first batch. Otherwise twice the time it takes,
    # which the worker's ETA never reaches on these trips (docs/fleet.md, "Limits").
    arrival = duration * 0.3 - late_grace_s if mischief.late else duration * 2 + late_grace_s
    return TripPlan(
        name=name,
        plane=plane,
        route=route,
        speed_limit_kmh=speed_limit_kmh,
        corridor_m=corridor_m,
        planned_duration_s=max(duration * 1.2, 60.0),
        arrival_offset_s=arrival,
        mischief=mischief,
        fixes=fixes,
        uploads=uploads,
        gaps=gaps,
    )


def mischief_for(seed: int, device: int, trip: int) -> Mischief:
    """What goes wrong on a device's `trip`-th trip: the first trip of the first device always
    speeds, the second's leaves the corridor, the third's runs late; the rest by chance."""
    if trip == 0 and device < 3:
        return Mischief(
            speeding=device == 0,
            deviation=device == 1,
            late=device == 2,
            signal_loss=device == 1,
        )
    rng = random.Random(f"{seed}:{device}:{trip}")  # noqa: S311 - a simulation, not a secret
    return Mischief(
        speeding=rng.random() < 0.4,
        deviation=rng.random() < 0.25,
        late=rng.random() < 0.2,
        signal_loss=rng.random() < 0.25,
    )
