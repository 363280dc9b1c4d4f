"""Flat geometry around a city centre: metres east and north of it, to and from WGS 84, and
where a position lies relative to a polyline (the simulator's own, independent of the worker's).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8
BERLIN = (52.5200, 13.4050)  # Alexanderplatz, roughly: the default centre of the street grid


@dataclass(frozen=True)
class Plane:
    """An equirectangular projection around `centre`: exact to centimetres within a city."""

    centre: tuple[float, float] = BERLIN

    @property
    def _m_per_deg_lat(self) -> float:
        return math.pi * EARTH_RADIUS_M / 180

    @property
    def _m_per_deg_lon(self) -> float:
        return self._m_per_deg_lat * math.cos(math.radians(self.centre[0]))

    def to_lat_lon(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) of the point `x` metres east and `y` metres north of the centre."""
        return (
            self.centre[0] + y / self._m_per_deg_lat,
            self.centre[1] + x / self._m_per_deg_lon,
        )

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """Metres east and north of the centre."""
        return (
            (lon - self.centre[1]) * self._m_per_deg_lon,
            (lat - self.centre[0]) * self._m_per_deg_lat,
        )


@dataclass(frozen=True)
class Located:
    """Where a point lies relative to a polyline."""

    off_m: float
    """Distance to the nearest point of the polyline."""
    remaining_m: float
    """Length of the polyline from that nearest point to its end."""


class Polyline:
    """A route in the plane, in travel order, with its length precomputed."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        self.points = tuple(points)
        self.lengths = [math.dist(a, b) for a, b in itertools.pairwise(self.points)]
        self.length_m = sum(self.lengths)

    def point_at(self, distance_m: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """The point `distance_m` along the line and the unit vector to its left there."""
        travelled = 0.0
        for (a, b), length in zip(itertools.pairwise(self.points), self.lengths, strict=True):
            if length > 0 and travelled + length >= distance_m:
                t = (distance_m - travelled) / length
                dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
                return (a[0] + t * dx * length, a[1] + t * dy * length), (-dy, dx)
            travelled += length
        a, b = self.points[-2], self.points[-1]
        length = math.dist(a, b) or 1.0
        return b, (-(b[1] - a[1]) / length, (b[0] - a[0]) / length)

    def locate(self, x: float, y: float) -> Located:
        """Distance from (x, y) to the line and the length left after its nearest point."""
        best_d, best_remaining = math.inf, 0.0
        after = self.length_m
        for (a, b), length in zip(itertools.pairwise(self.points), self.lengths, strict=True):
            after -= length
            if length == 0:
                continue
            t = ((x - a[0]) * (b[0] - a[0]) + (y - a[1]) * (b[1] - a[1])) / length**2
            t = min(1.0, max(0.0, t))
            d = math.dist((x, y), (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
            if d < best_d:
                best_d, best_remaining = d, (1 - t) * length + after
        return Located(best_d, best_remaining)
