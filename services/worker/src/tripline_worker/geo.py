"""Distances on the Earth for telemetry: between two fixes, and from a fix to a planned route.

Positions are (latitude, longitude) in WGS 84 degrees; distances are metres on a sphere of the
Earth's mean radius (error below 0.5% against the ellipsoid, far inside GPS noise).

Where a fix lies relative to a route is computed per segment in a local flat projection centred
on the fix (equirectangular). It is exact enough near the fix, which is where the nearest
segment of any corridor that matters lies; far segments are only ever compared for "farther".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

EARTH_RADIUS_M = 6_371_008.8
"""Mean radius of the Earth (IUGG), metres."""

# Metres per degree of latitude (and of longitude at the equator).
_M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180

# Points of a route closer than this are one point (a waypoint repeating the origin, say).
_SAME_POINT_M = 0.5


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two positions given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def path_length_m(points: Sequence[tuple[float, float]], start_m: float = 0.0) -> float:
    """`start_m` plus `haversine_m` of each leg between consecutive `points`, added in order:
    the same sum, in one loop that reuses each point's cosine for the next leg (a call per leg
    cost a third of it; `tests/test_geo.py` checks the sums are identical)."""
    if len(points) < 2:
        return start_m
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    diameter = 2 * EARTH_RADIUS_M
    lat1, lon1 = points[0]
    phi1 = radians(lat1)
    cos1 = cos(phi1)
    total = start_m
    for lat2, lon2 in itertools.islice(points, 1, None):
        phi2 = radians(lat2)
        cos2 = cos(phi2)
        h = sin((phi2 - phi1) / 2) ** 2 + cos1 * cos2 * sin(radians(lon2 - lon1) / 2) ** 2
        total += diameter * asin(min(1.0, sqrt(h)))
        phi1, cos1, lon1 = phi2, cos2, lon2
    return total


class Position(Protocol):
    """Anything with a latitude and a longitude (a fix)."""

    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


class RoutePosition(NamedTuple):
    """Where a fix lies relative to a route (a tuple: one is built per fix, hundreds a batch)."""

    off_route_m: float
    """Distance from the fix to the nearest point of the route."""
    remaining_m: float
    """Length of the route from that nearest point to its end."""


class Route:
    """A planned route: a polyline through (lat, lon) points, in travel order.

    Lengths are precomputed once, so locating many fixes on one route costs one pass over its
    segments per fix.
    """

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        if not points:
            raise ValueError("a route needs at least one point")
        kept: list[tuple[float, float]] = [points[0]]
        for lat, lon in points[1:]:
            if haversine_m(*kept[-1], lat, lon) > _SAME_POINT_M:
                kept.append((lat, lon))
        self.points: tuple[tuple[float, float], ...] = tuple(kept)
        lengths = [haversine_m(*a, *b) for a, b in itertools.pairwise(kept)]
        # after[i]: the route's length from the end of segment i to the route's end.
        after = [0.0] * len(lengths)
        for i in range(len(lengths) - 2, -1, -1):
            after[i] = after[i + 1] + lengths[i + 1]
        # Per segment: its start, its extent north in metres and east in degrees (longitude
        # folded), its length and the route left after it; what does not depend on the fix
        # is computed here, once.
        self._segments = tuple(
            (a[0], a[1], (b[0] - a[0]) * _M_PER_DEG_LAT, _wrap(b[1] - a[1]), length, rest)
            for a, b, length, rest in zip(kept[:-1], kept[1:], lengths, after, strict=True)
        )
        self.length_m: float = sum(lengths)
        """Total length of the route."""

    def locate(self, lat: float, lon: float) -> RoutePosition:
        """Distance from (lat, lon) to the route, and the route length left from there."""
        if not self._segments:
            only = haversine_m(lat, lon, *self.points[0])
            return RoutePosition(off_route_m=only, remaining_m=only)
        # Local flat projection around the fix: metres east (x) and north (y) of it.
        m_per_deg_lat = _M_PER_DEG_LAT
        m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat))
        best_d2 = math.inf
        best_remaining = 0.0
        for a_lat, a_lon, dy, d_lon, length, rest in self._segments:
            ax = ((a_lon - lon + 180.0) % 360.0 - 180.0) * m_per_deg_lon  # _wrap, inlined
            ay = (a_lat - lat) * m_per_deg_lat
            dx = d_lon * m_per_deg_lon
            seg2 = dx * dx + dy * dy
            t = 0.0
            if seg2 != 0:
                # min(1.0, max(0.0, t)), by comparisons: the calls cost more.
                t = -(ax * dx + ay * dy) / seg2
                t = t if t > 0.0 else 0.0
                t = t if t < 1.0 else 1.0
            cx, cy = ax + t * dx, ay + t * dy
            d2 = cx * cx + cy * cy
            if d2 < best_d2:
                best_d2 = d2
                best_remaining = (1 - t) * length + rest
        return RoutePosition(math.sqrt(best_d2), best_remaining)

    def off_route_m(self, points: Iterable[Position]) -> list[float]:
        """`locate(lat, lon).off_route_m` of each point, the same figures computed in one loop:
        the corridor rule asks it of every fix of a batch, and a call and a `RoutePosition`
        per fix cost a third of it (`tests/test_geo.py` checks the figures are identical)."""
        if not self._segments:
            return [self.locate(point.lat, point.lon).off_route_m for point in points]
        m_per_deg_lat = _M_PER_DEG_LAT
        cos, radians, sqrt = math.cos, math.radians, math.sqrt
        segments = [segment[:4] for segment in self._segments]
        distances = []
        for point in points:
            lat, lon = point.lat, point.lon
            m_per_deg_lon = m_per_deg_lat * cos(radians(lat))
            best_d2 = math.inf
            for a_lat, a_lon, dy, d_lon in segments:
                ax = ((a_lon - lon + 180.0) % 360.0 - 180.0) * m_per_deg_lon
                ay = (a_lat - lat) * m_per_deg_lat
                dx = d_lon * m_per_deg_lon
                seg2 = dx * dx + dy * dy
                t = 0.0
                if seg2 != 0:
                    t = -(ax * dx + ay * dy) / seg2
                    t = t if t > 0.0 else 0.0
                    t = t if t < 1.0 else 1.0
                cx, cy = ax + t * dx, ay + t * dy
                d2 = cx * cx + cy * cy
                if d2 < best_d2:
                    best_d2 = d2
            distances.append(sqrt(best_d2))
        return distances


def _wrap(delta_lon: float) -> float:
    """A longitude difference folded into [-180, 180) (routes may cross the antimeridian)."""
    return (delta_lon + 180.0) % 360.0 - 180.0
