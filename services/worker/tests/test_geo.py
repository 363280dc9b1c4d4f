"""Distances for telemetry: great circles, and where a fix lies relative to a planned route."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from tripline_worker.geo import Route, haversine_m, path_length_m
from tripline_worker.trips.progress import Fix

BERLIN = (52.5200, 13.4050)
POTSDAM = (52.3906, 13.0645)


def test_haversine_matches_known_distances() -> None:
    # Berlin Mitte to Potsdam: 27.2 km; a degree of latitude: 111.2 km; the same point: 0.
    assert haversine_m(*BERLIN, *POTSDAM) == pytest.approx(27_190, rel=0.005)
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-4)
    assert haversine_m(*BERLIN, *BERLIN) == 0


def test_a_fix_on_the_route_is_on_it_with_the_rest_of_the_route_ahead() -> None:
    route = Route([BERLIN, POTSDAM])
    middle = ((BERLIN[0] + POTSDAM[0]) / 2, (BERLIN[1] + POTSDAM[1]) / 2)
    position = route.locate(*middle)
    assert position.off_route_m < 15
    assert position.remaining_m == pytest.approx(route.length_m / 2, rel=0.01)
    assert route.locate(*POTSDAM).remaining_m == pytest.approx(0, abs=1)
    assert route.locate(*BERLIN).remaining_m == pytest.approx(route.length_m, rel=1e-6)


def test_distance_off_the_route_is_measured_to_the_nearest_segment() -> None:
    # An L-shaped route along the equator then north; a fix 1 km west of the corner's leg.
    route = Route([(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
    east_of_vertical = route.locate(0.5, 1.0 + 1000 / 111_195)
    assert east_of_vertical.off_route_m == pytest.approx(1000, rel=0.01)
    assert east_of_vertical.remaining_m == pytest.approx(111_195 / 2, rel=0.01)
    # Beyond the end: the distance to the end point.
    past_the_end = route.locate(1.0 + 2000 / 111_195, 1.0)
    assert past_the_end.off_route_m == pytest.approx(2000, rel=0.01)
    assert past_the_end.remaining_m == pytest.approx(0, abs=1)


def test_repeated_points_and_single_point_routes() -> None:
    assert Route([BERLIN, BERLIN, POTSDAM, POTSDAM]).points == (BERLIN, POTSDAM)
    only = Route([BERLIN, BERLIN])
    position = only.locate(*POTSDAM)
    assert position.off_route_m == position.remaining_m == pytest.approx(27_190, rel=0.005)
    with pytest.raises(ValueError, match="at least one point"):
        Route([])


def test_a_route_across_the_antimeridian() -> None:
    route = Route([(0.0, 179.9), (0.0, -179.9)])  # ~22 km across the date line
    assert route.length_m == pytest.approx(22_239, rel=0.01)
    assert route.locate(0.0, 180.0).off_route_m < 1
    assert route.locate(0.01, 180.0).off_route_m == pytest.approx(1112, rel=0.01)


def random_positions(n: int, seed: int) -> list[tuple[float, float]]:
    """Around the test route, and anywhere on Earth (poles and antimeridian included)."""
    rng = random.Random(seed)
    near = [(rng.uniform(52.2, 52.7), rng.uniform(12.8, 13.6)) for _ in range(n)]
    anywhere = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(n)]
    return near + anywhere


@pytest.mark.parametrize(
    "points",
    [[BERLIN, POTSDAM], [BERLIN, (52.456, 13.29), POTSDAM], [(0.0, 179.9), (0.0, -179.9)]],
)
def test_a_route_locates_many_points_as_it_locates_each(points) -> None:
    route = Route(points)
    positions = [Fix(datetime.now(UTC), lat, lon) for lat, lon in random_positions(2000, 1)]

    assert route.off_route_m(positions) == [
        route.locate(fix.lat, fix.lon).off_route_m for fix in positions
    ]


def test_a_path_is_as_long_as_its_legs_added_in_order() -> None:
    points = random_positions(2000, 2)
    added = 12.5
    for a, b in itertools.pairwise(points):
        added += haversine_m(*a, *b)

    assert path_length_m(points, 12.5) == added
    assert path_length_m(points[:1], 12.5) == 12.5
