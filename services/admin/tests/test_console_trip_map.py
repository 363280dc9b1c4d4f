"""A trip's map as geometry: an equirectangular projection around the trip's centre, the same
scale east and north, everything inside the box; the corridor as wide as it is in metres; a
single point or none drawn at a sane scale."""

from __future__ import annotations

import math

import pytest

from tripline_admin.console import trip_map as tm
from tripline_admin.console.trip_map import AlertPlace, Place, fit, nice_distance, trip_map

# Hamburg to Bremen, roughly: 53.55 N 9.99 E to 53.08 N 8.80 E.
ROUTE = [Place(53.55, 9.99), Place(53.30, 9.40), Place(53.08, 8.80)]


def metres_between(a: tm.Point, b: tm.Point, scale: float) -> float:
    return math.hypot(a.x - b.x, a.y - b.y) / scale


def test_the_centre_of_the_places_is_the_centre_of_the_box() -> None:
    projection = fit([(53.55, 9.99), (53.08, 8.80)])

    centre = projection.point(53.315, 9.395)
    assert (centre.x, centre.y) == (pytest.approx(tm.WIDTH / 2), pytest.approx(tm.HEIGHT / 2))


def test_east_is_right_north_is_up_at_the_same_scale_both_ways() -> None:
    projection = fit([(53.0, 9.0), (54.0, 10.0)])
    origin = projection.point(53.5, 9.5)
    # Ten kilometres north and ten east (at the centre latitude) are equally long.
    north = projection.point(53.5 + math.degrees(10_000 / tm.EARTH_RADIUS_M), 9.5)
    east = projection.point(
        53.5, 9.5 + math.degrees(10_000 / tm.EARTH_RADIUS_M / math.cos(math.radians(53.5)))
    )
    assert north.y < origin.y and north.x == pytest.approx(origin.x)
    assert east.x > origin.x and east.y == pytest.approx(origin.y)
    assert origin.y - north.y == pytest.approx(east.x - origin.x, rel=1e-3)
    assert metres_between(origin, north, projection.scale) == pytest.approx(10_000, rel=1e-3)


def test_every_place_and_the_margin_around_it_fit_inside_the_padding() -> None:
    places = [(53.55, 9.99), (53.08, 8.80), (53.4, 9.1)]
    projection = fit(places, margin_m=2000)
    for lat, lon in places:
        point = projection.point(lat, lon)
        margin = 2000 * projection.scale
        assert (
            point.x - margin >= tm.PADDING - 0.01
            and point.x + margin <= tm.WIDTH - tm.PADDING + 0.01
        )
        assert (
            point.y - margin >= tm.PADDING - 0.01
            and point.y + margin <= tm.HEIGHT - tm.PADDING + 0.01
        )
    # One side fills the box: the drawing is as large as fits.
    xs = [projection.point(lat, lon).x for lat, lon in places]
    ys = [projection.point(lat, lon).y for lat, lon in places]
    margins = 2 * 2000 * projection.scale
    assert max(
        max(xs) - min(xs) + margins - (tm.WIDTH - 2 * tm.PADDING),
        max(ys) - min(ys) + margins - (tm.HEIGHT - 2 * tm.PADDING),
    ) == pytest.approx(0, abs=0.05)


def test_a_single_place_sits_in_the_middle_at_the_smallest_extent() -> None:
    projection = fit([(48.1, 11.5)])

    point = projection.point(48.1, 11.5)
    assert (point.x, point.y) == (tm.WIDTH / 2, tm.HEIGHT / 2)
    assert projection.scale == pytest.approx((tm.HEIGHT - 2 * tm.PADDING) / tm.MIN_EXTENT_M)


def test_no_places_give_a_finite_projection() -> None:
    projection = fit([])

    assert math.isfinite(projection.scale) and projection.scale > 0


def test_the_map_draws_the_route_the_corridor_in_metres_the_track_and_the_alerts() -> None:
    positions = [Place(53.55, 9.99), Place(53.45, 9.70), Place(53.35, 9.45)]
    alert = AlertPlace(53.45, 9.70, "critical", "corridor: 1400 m off the planned route")

    drawn = trip_map(ROUTE, positions, [alert], corridor_m=500)

    assert len(drawn.route.split()) == 3 and len(drawn.track.split()) == 3
    assert drawn.stops == [tm.Point(*map(float, drawn.route.split()[1].split(",")))]
    assert f"{drawn.origin.x},{drawn.origin.y}" == drawn.route.split()[0]
    assert f"{drawn.destination.x},{drawn.destination.y}" == drawn.route.split()[-1]
    assert drawn.latest == tm.Point(*map(float, drawn.track.split()[-1].split(",")))
    [marker] = drawn.markers
    assert f"{marker.at.x},{marker.at.y}" == drawn.track.split()[1]
    assert marker.css == "critical" and marker.title.startswith("corridor")
    # The corridor stroke is twice 500 m wide in map units; the scale bar says what it measures.
    projection = fit(
        [(p.lat, p.lon) for p in (*ROUTE, *positions)] + [(alert.lat, alert.lon)], margin_m=500
    )
    assert drawn.corridor_width == pytest.approx(1000 * projection.scale, abs=0.01)
    bar_metres = float(drawn.scale_label.split()[0]) * (1000 if "km" in drawn.scale_label else 1)
    assert drawn.scale_bar == pytest.approx(bar_metres * projection.scale, abs=0.01)


def test_a_trip_without_positions_corridor_or_alerts_draws_its_route_alone() -> None:
    drawn = trip_map(ROUTE[::2], [], [], corridor_m=None)

    assert drawn.track == "" and drawn.latest is None and drawn.markers == []
    assert drawn.corridor_width is None and drawn.stops == []
    assert len(drawn.route.split()) == 2


def test_a_trip_whose_origin_is_its_destination_is_drawn_at_a_sane_scale() -> None:
    drawn = trip_map([Place(52.5, 13.4), Place(52.5, 13.4)], [], [], corridor_m=200)

    assert drawn.origin == drawn.destination == tm.Point(tm.WIDTH / 2, tm.HEIGHT / 2)
    assert 0 < drawn.corridor_width < tm.HEIGHT


@pytest.mark.parametrize(
    ("metres", "nice"), [(0.5, 0.5), (1, 1), (3, 2), (7.5, 5), (140, 100), (2600, 2000), (0, 1)]
)
def test_the_scale_bar_is_a_round_distance_no_longer_than_asked(metres: float, nice: float) -> None:
    assert nice_distance(metres) == pytest.approx(nice)
