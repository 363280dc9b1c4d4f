"""A trip drawn as inline SVG: the planned route, its corridor, the positions received and the
alerts, projected onto the map's own coordinates by pure functions (the template draws them).

No tiles and no script: the drawing is the data alone, so it needs nothing the console's CSP
refuses. The projection is equirectangular around the drawing's centre latitude: over a trip's
extent (tens or hundreds of kilometres) its distortion is far below what a glance can see, and
a corridor of `corridor_m` metres can be drawn as a stroke of a width in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 800
HEIGHT = 500
PADDING = 24
EARTH_RADIUS_M = 6_371_008.8
MIN_EXTENT_M = 500.0  # A single point (or none) is drawn at this scale, not infinitely close.


@dataclass(frozen=True)
class Point:
    """A place on the map, in the map's coordinates (x right, y down)."""

    x: float
    y: float


@dataclass(frozen=True)
class Projection:
    """Equirectangular around `centre_lat`, then scaled and shifted into the map's box:
    `scale` is map units per metre, the same in both directions."""

    centre_lat: float
    centre_lon: float
    scale: float
    width: float
    height: float

    def metres(self, lat: float, lon: float) -> tuple[float, float]:
        """East and north of the centre, in metres."""
        east = math.radians(lon - self.centre_lon) * math.cos(math.radians(self.centre_lat))
        north = math.radians(lat - self.centre_lat)
        return east * EARTH_RADIUS_M, north * EARTH_RADIUS_M

    def point(self, lat: float, lon: float) -> Point:
        east, north = self.metres(lat, lon)
        return Point(
            x=round(self.width / 2 + east * self.scale, 2),
            y=round(self.height / 2 - north * self.scale, 2),
        )


def fit(
    places: Sequence[tuple[float, float]],
    *,
    margin_m: float = 0.0,
    width: float = WIDTH,
    height: float = HEIGHT,
    padding: float = PADDING,
) -> Projection:
    """The projection that shows every one of `places` (lat, lon), and `margin_m` metres
    around them, as large as fits in the box with `padding` units to spare, centred."""
    if not places:
        return Projection(
            0.0, 0.0, (min(width, height) - 2 * padding) / MIN_EXTENT_M, width, height
        )
    lats = [lat for lat, _ in places]
    lons = [lon for _, lon in places]
    centre = Projection((min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2, 1.0, 0, 0)
    corners = [
        centre.metres(lat, lon) for lat in (min(lats), max(lats)) for lon in (min(lons), max(lons))
    ]
    span_east = max(e for e, _ in corners) - min(e for e, _ in corners) + 2 * margin_m
    span_north = max(n for _, n in corners) - min(n for _, n in corners) + 2 * margin_m
    span_east, span_north = max(span_east, MIN_EXTENT_M), max(span_north, MIN_EXTENT_M)
    scale = min((width - 2 * padding) / span_east, (height - 2 * padding) / span_north)
    return Projection(centre.centre_lat, centre.centre_lon, scale, width, height)


def polyline(points: Sequence[Point]) -> str:
    """The `points` attribute of an SVG polyline."""
    return " ".join(f"{p.x},{p.y}" for p in points)


def nice_distance(metres: float) -> float:
    """The largest of 1, 2 or 5 times a power of ten (metres) that is at most `metres`."""
    if metres <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(metres))
    return float(max(f * power for f in (1, 2, 5) if f * power <= metres))


def distance_label(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


@dataclass(frozen=True)
class Marker:
    """An alert on the map: where its worst fix was, what it says."""

    at: Point
    css: str
    title: str


@dataclass(frozen=True)
class TripMap:
    """What the template draws, in the map's coordinates."""

    width: float
    height: float
    route: str
    corridor_width: float | None
    stops: list[Point]
    origin: Point
    destination: Point
    track: str
    latest: Point | None
    markers: list[Marker]
    scale_bar: float
    scale_label: str


@dataclass(frozen=True)
class Place:
    """A latitude and longitude."""

    lat: float
    lon: float


@dataclass(frozen=True)
class AlertPlace:
    """An alert that has a position (speeding and corridor alerts record their worst fix)."""

    lat: float
    lon: float
    css: str
    title: str


def trip_map(
    route: Sequence[Place],
    positions: Sequence[Place],
    alerts: Sequence[AlertPlace],
    *,
    corridor_m: float | None,
) -> TripMap:
    """The map of a trip: `route` is origin, waypoints and destination in order (at least the
    origin and destination); `positions` the fixes received, oldest first. The corridor is a
    stroke of twice its width with round joins and caps along the route: exactly the set of
    places within `corridor_m` of it."""
    places = [(p.lat, p.lon) for p in (*route, *positions)] + [(a.lat, a.lon) for a in alerts]
    projection = fit(places, margin_m=corridor_m or 0.0)
    route_points = [projection.point(p.lat, p.lon) for p in route]
    track_points = [projection.point(p.lat, p.lon) for p in positions]
    bar_metres = nice_distance((WIDTH - 2 * PADDING) / 4 / projection.scale)
    return TripMap(
        width=WIDTH,
        height=HEIGHT,
        route=polyline(route_points),
        corridor_width=round(2 * corridor_m * projection.scale, 2) if corridor_m else None,
        stops=route_points[1:-1],
        origin=route_points[0],
        destination=route_points[-1],
        track=polyline(track_points),
        latest=track_points[-1] if track_points else None,
        markers=[
            Marker(at=projection.point(a.lat, a.lon), css=a.css, title=a.title) for a in alerts
        ],
        scale_bar=round(bar_metres * projection.scale, 2),
        scale_label=distance_label(bar_metres),
    )
