"""The console's trip page: a map of the planned route, its corridor, the positions received
(at most a bounded number, spread over the trip) and the alerts; reached from a user's page
and the overview's alerts; for operators and admins only; text escaped like every page."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest

from tripline_admin.trips import service
from tripline_common.data.models import (
    Alert,
    AlertRule,
    AlertSeverity,
    Device,
    TelemetryBatch,
    TelemetryEvent,
    Trip,
    TripStatus,
    User,
    UserRole,
    Waypoint,
)

XSS = "<script>alert(1)</script>"
START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
async def console(browser, operator, sign_in):
    """The browser, signed in as an operator."""
    return await sign_in(browser, operator)


@pytest.fixture
async def trip(session_factory, device_with_key) -> Trip:
    """A Hamburg → Bremen trip with one waypoint, a 500 m corridor, 30 positions a minute
    apart and two alerts (one recording where it happened)."""
    device: Device = device_with_key[0]
    async with session_factory() as session:
        trip = Trip(
            owner_id=device.owner_id,
            device_id=device.id,
            name=f"Hamburg → Bremen {XSS}",
            status=TripStatus.ACTIVE,
            origin_lat=53.55,
            origin_lon=9.99,
            destination_lat=53.08,
            destination_lon=8.80,
            planned_start=START,
            planned_arrival=START + timedelta(hours=2),
            started_at=START,
            corridor_m=500,
            speed_limit_kmh=80,
        )
        session.add(trip)
        await session.flush()
        session.add(Waypoint(trip_id=trip.id, seq=0, lat=53.30, lon=9.40, name="Rest stop"))
        batch = TelemetryBatch(device_id=device.id, event_count=30)
        session.add(batch)
        await session.flush()
        for i in range(30):
            session.add(
                TelemetryEvent(
                    batch_id=batch.id,
                    device_id=device.id,
                    trip_id=trip.id,
                    recorded_at=START + timedelta(minutes=i),
                    lat=53.55 - 0.008 * i,
                    lon=9.99 - 0.02 * i,
                )
            )
        session.add(
            Alert(
                owner_id=device.owner_id,
                trip_id=trip.id,
                device_id=device.id,
                rule=AlertRule.CORRIDOR,
                severity=AlertSeverity.CRITICAL,
                message=f"1400 m off the planned route {XSS}",
                details={"lat": 53.47, "lon": 9.79, "off_route_m": 1400},
                dedupe_key=f"corridor:{trip.id}:1",
            )
        )
        session.add(
            Alert(
                owner_id=device.owner_id,
                trip_id=trip.id,
                device_id=device.id,
                rule=AlertRule.LATE,
                severity=AlertSeverity.INFO,
                message="Arrival expected 18 min late",
                dedupe_key=f"late:{trip.id}",
            )
        )
        await session.commit()
        return trip


def polyline_points(html: str, css: str) -> list[tuple[float, float]]:
    match = re.search(rf'<polyline class="{css}" points="([^"]*)"', html)
    assert match, f"no {css} in the page"
    return [tuple(map(float, pair.split(","))) for pair in match.group(1).split()]  # type: ignore[misc]


async def test_the_trip_page_draws_route_corridor_positions_and_alerts(
    browser, console, trip
) -> None:
    response = await browser.get(f"/console/trips/{trip.id}")

    assert response.status_code == 200
    html = response.text
    assert len(polyline_points(html, "map-route")) == 3  # Origin, the waypoint, destination.
    assert polyline_points(html, "map-corridor") == polyline_points(html, "map-route")
    corridor = re.search(r'class="map-corridor" points="[^"]*" stroke-width="([\d.]+)"', html)
    assert corridor and float(corridor.group(1)) > 0
    assert len(polyline_points(html, "map-track")) == 30
    assert html.count('class="map-stop"') == 1
    assert "<title>Waypoint 1: Rest stop</title>" in html
    # The corridor alert is on the map where it happened; the late one (no place) is listed only.
    assert html.count('<g class="map-alert map-alert-critical">') == 1
    assert "Arrival expected 18 min late" in html
    assert "30 positions drawn" in html
    # The SVG is markup of our own: names and messages are escaped text.
    assert XSS not in html
    assert "Hamburg → Bremen &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>corridor: 1400 m off the planned route &lt;script&gt;" in html


async def test_a_trip_without_telemetry_or_corridor_shows_its_route_alone(
    browser, console, session_factory, operator
) -> None:
    async with session_factory() as session:
        trip = Trip(
            owner_id=operator.id,
            name="Planned",
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=START,
            planned_arrival=START + timedelta(hours=1),
        )
        session.add(trip)
        await session.commit()

    html = (await browser.get(f"/console/trips/{trip.id}")).text

    assert len(polyline_points(html, "map-route")) == 2
    assert 'class="map-corridor"' not in html and 'class="map-track"' not in html
    assert "0 positions drawn" in html and "No alerts." in html


async def test_the_trip_page_needs_a_console_session(browser, trip) -> None:
    response = await browser.get(f"/console/trips/{trip.id}")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=%2Fconsole%2Ftrips%2F")


async def test_a_plain_user_cannot_open_a_trip_page(browser, make_user, sign_in, trip) -> None:
    await sign_in(browser, await make_user(UserRole.USER))

    response = await browser.get(f"/console/trips/{trip.id}")

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")


async def test_an_admin_opens_a_trip_page(browser, admin, sign_in, trip) -> None:
    await sign_in(browser, admin)

    assert (await browser.get(f"/console/trips/{trip.id}")).status_code == 200


@pytest.mark.parametrize(
    ("trip_id", "message"),
    [
        ("0b6e7c1e-2f4a-4d0e-9d53-5f1f3c7a9e21", "Trip not found."),
        ("not-a-trip", "There is nothing at this address."),
    ],
)
async def test_an_unknown_trip_is_an_html_404(browser, console, trip_id: str, message: str) -> None:
    response = await browser.get(f"/console/trips/{trip_id}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text


async def test_a_users_page_links_their_latest_trips(browser, console, trip) -> None:
    html = (await browser.get(f"/console/users/{trip.owner_id}")).text

    assert f'href="/console/trips/{trip.id}"' in html


async def test_an_open_alert_on_the_overview_links_its_trip(browser, console, trip) -> None:
    html = (await browser.get("/console/")).text

    assert f'<a href="/console/trips/{trip.id}">1400 m off the planned route' in html


async def test_a_trip_with_fewer_positions_than_the_limit_gives_them_all_in_order(
    session_factory, trip
) -> None:
    async with session_factory() as session:
        fixes = await service.trip_positions(session=session, trip_id=trip.id, limit=30)

    assert [f.recorded_at for f in fixes] == [START + timedelta(minutes=i) for i in range(30)]


async def test_past_the_limit_positions_are_spread_over_the_trip_first_and_last_kept(
    session_factory, trip
) -> None:
    async with session_factory() as session:
        fixes = await service.trip_positions(session=session, trip_id=trip.id, limit=10)

    times = [f.recorded_at for f in fixes]
    assert len(times) <= 10
    assert times[0] == START and times[-1] == START + timedelta(minutes=29)
    assert times == sorted(set(times))
    # One fix per equal slice of the trip's 29 minutes: no gap much wider than a slice.
    gaps = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 29 / 9 + 1


async def test_a_trip_with_a_single_position_draws_it(session_factory, trip) -> None:
    async with session_factory() as session:
        other = Trip(
            owner_id=trip.owner_id,
            name="Short",
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=START,
            planned_arrival=START + timedelta(hours=1),
        )
        session.add(other)
        owner = await session.get(User, trip.owner_id)
        assert owner is not None
        batch = TelemetryBatch(device_id=trip.device_id, event_count=1)
        session.add(batch)
        await session.flush()
        session.add(
            TelemetryEvent(
                batch_id=batch.id,
                device_id=trip.device_id,
                trip_id=other.id,
                recorded_at=START,
                lat=52.45,
                lon=13.2,
            )
        )
        await session.commit()
        one = await service.trip_positions(session=session, trip_id=other.id, limit=1)
        spread = await service.trip_positions(session=session, trip_id=trip.id, limit=1)

    assert [(f.lat, f.lon) for f in one] == [(52.45, 13.2)]
    assert [f.recorded_at for f in spread] == [START + timedelta(minutes=29)]
