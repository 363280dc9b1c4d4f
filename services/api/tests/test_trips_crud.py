"""Trips CRUD through the real app and database: ownership, status codes, PUT / PATCH / DELETE
semantics, and bad input answered with a 4xx in the shared error shape."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select
from trip_factories import count_raw_queries, missing_id, store_device, trip_body

from tripline_common.data.models import Trip, Waypoint


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


@pytest.fixture
async def trip(client, headers):
    response = await client.post("/v1/trips", json=trip_body(), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["request_id"] == response.headers["X-Request-ID"]
    if code is not None:
        assert body["code"] == code
    return body


# --- Create and read ---------------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_planned_trip(client, headers) -> None:
    response = await client.post("/v1/trips", json=trip_body(), headers=headers)

    assert response.status_code == 201
    trip = response.json()
    assert response.headers["Location"] == f"http://testserver/v1/trips/{trip['id']}"
    assert trip["status"] == "planned"
    assert trip["origin_lat"] == 52.52 and trip["destination_lon"] == 9.993
    assert trip["waypoints"] == [{"seq": 0, "lat": 53.0, "lon": 11.0, "name": "Depot 7"}]
    assert trip["started_at"] is None and trip["distance_m"] == 0.0


async def test_location_of_a_created_trip_serves_it(client, headers, trip) -> None:
    response = await client.get(f"/v1/trips/{trip['id']}", headers=headers)

    assert response.status_code == 200
    assert response.json() == trip


async def test_waypoints_keep_the_order_they_were_sent_in(client, headers) -> None:
    points = [{"lat": float(i), "lon": 10.0, "name": f"P{i}"} for i in range(5)]
    created = await client.post("/v1/trips", json=trip_body(waypoints=points), headers=headers)

    fetched = (await client.get(f"/v1/trips/{created.json()['id']}", headers=headers)).json()
    assert [(w["seq"], w["lat"]) for w in fetched["waypoints"]] == [(i, float(i)) for i in range(5)]


async def test_requests_without_a_valid_token_are_a_401(client, trip) -> None:
    assert_error_shape(await client.get("/v1/trips"), 401)
    assert_error_shape(await client.get(f"/v1/trips/{trip['id']}"), 401)
    bad_token = {"Authorization": "Bearer not-a-token"}
    assert_error_shape(await client.post("/v1/trips", json=trip_body(), headers=bad_token), 401)


async def test_an_unknown_trip_is_a_404_in_the_shared_shape(client, headers) -> None:
    body = assert_error_shape(
        await client.get(f"/v1/trips/{missing_id()}", headers=headers), 404, "trip_not_found"
    )
    assert body["message"] == "Trip not found."


async def test_another_users_trip_is_a_404(client, trip, make_user, auth_headers) -> None:
    intruder = await auth_headers(await make_user())
    url = f"/v1/trips/{trip['id']}"

    assert_error_shape(await client.get(url, headers=intruder), 404, "trip_not_found")
    put = await client.put(url, json=trip_body(status="planned"), headers=intruder)
    assert_error_shape(put, 404, "trip_not_found")
    patch = await client.patch(url, json={"name": "mine now"}, headers=intruder)
    assert_error_shape(patch, 404, "trip_not_found")
    assert_error_shape(await client.delete(url, headers=intruder), 404, "trip_not_found")
    listed = await client.get("/v1/trips", headers=intruder)
    assert listed.json()["items"] == []


async def test_another_users_trip_is_untouched_by_their_attempts(
    client, headers, trip, make_user, auth_headers
) -> None:
    intruder = await auth_headers(await make_user())
    url = f"/v1/trips/{trip['id']}"
    await client.patch(url, json={"name": "mine now"}, headers=intruder)
    await client.delete(url, headers=intruder)

    assert (await client.get(url, headers=headers)).json() == trip


async def test_the_device_must_be_one_of_yours(
    client, owner, headers, make_user, session_factory
) -> None:
    mine = await store_device(session_factory, owner)
    theirs = await store_device(session_factory, await make_user())

    ok = await client.post("/v1/trips", json=trip_body(device_id=str(mine.id)), headers=headers)
    refused = await client.post(
        "/v1/trips", json=trip_body(device_id=str(theirs.id)), headers=headers
    )
    unknown = await client.post(
        "/v1/trips", json=trip_body(device_id=missing_id()), headers=headers
    )

    assert ok.status_code == 201 and ok.json()["device_id"] == str(mine.id)
    body = assert_error_shape(refused, 422, "unknown_device")
    assert body["details"][0]["loc"] == ["body", "device_id"]
    # Someone else's device and no device at all look the same.
    assert unknown.json()["code"] == refused.json()["code"] == "unknown_device"
    assert unknown.json()["message"] == refused.json()["message"]


# --- PUT ---------------------------------------------------------------------------------------


async def test_put_replaces_every_field(client, headers, trip) -> None:
    replacement = trip_body(
        name="Hamburg loop",
        status="planned",
        waypoints=[{"lat": 1.0, "lon": 2.0}, {"lat": 3.0, "lon": 4.0}],
    )
    del replacement["speed_limit_kmh"]  # Omitted optional fields are cleared.

    response = await client.put(f"/v1/trips/{trip['id']}", json=replacement, headers=headers)

    assert response.status_code == 200
    replaced = response.json()
    assert replaced["name"] == "Hamburg loop"
    assert replaced["speed_limit_kmh"] is None
    assert replaced["corridor_m"] == 2000
    assert [(w["seq"], w["lat"], w["name"]) for w in replaced["waypoints"]] == [
        (0, 1.0, None),
        (1, 3.0, None),
    ]


async def test_put_is_idempotent(client, headers, trip) -> None:
    url = f"/v1/trips/{trip['id']}"
    replacement = trip_body(name="Same again", status="planned")

    first = await client.put(url, json=replacement, headers=headers)
    second = await client.put(url, json=replacement, headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()  # updated_at included: the repeat changed nothing.
    assert (await client.get(url, headers=headers)).json() == first.json()


async def test_put_needs_the_full_representation(client, headers, trip) -> None:
    partial = {"name": "only a name", "status": "planned"}
    response = await client.put(f"/v1/trips/{trip['id']}", json=partial, headers=headers)

    body = assert_error_shape(response, 422, "validation_error")
    missing = {tuple(d["loc"]) for d in body["details"] if d["type"] == "missing"}
    assert ("body", "origin_lat") in missing and ("body", "planned_start") in missing


async def test_put_shrinking_and_growing_waypoints_keeps_seq_dense(
    client, headers, trip, session_factory
) -> None:
    url = f"/v1/trips/{trip['id']}"
    for count in (4, 1, 3):
        points = [{"lat": float(i), "lon": 0.0} for i in range(count)]
        response = await client.put(
            url, json=trip_body(status="planned", waypoints=points), headers=headers
        )
        assert [w["seq"] for w in response.json()["waypoints"]] == list(range(count))
    async with session_factory() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Waypoint).where(Waypoint.trip_id == trip["id"])
        )
    assert stored == 3


# --- PATCH -------------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(client, headers, trip) -> None:
    response = await client.patch(
        f"/v1/trips/{trip['id']}", json={"speed_limit_kmh": 90}, headers=headers
    )

    assert response.status_code == 200
    patched = response.json()
    assert patched["speed_limit_kmh"] == 90
    unchanged = {k: v for k, v in patched.items() if k not in ("speed_limit_kmh", "updated_at")}
    assert unchanged == {
        k: v for k, v in trip.items() if k not in ("speed_limit_kmh", "updated_at")
    }
    assert patched["updated_at"] > trip["updated_at"]


async def test_patch_with_an_empty_body_is_a_422(client, headers, trip) -> None:
    response = await client.patch(f"/v1/trips/{trip['id']}", json={}, headers=headers)

    body = assert_error_shape(response, 422, "validation_error")
    assert "at least one field" in body["details"][0]["msg"]


async def test_patch_null_clears_an_optional_field_but_not_a_required_one(
    client, headers, trip
) -> None:
    url = f"/v1/trips/{trip['id']}"
    cleared = await client.patch(url, json={"corridor_m": None}, headers=headers)
    refused = await client.patch(url, json={"name": None}, headers=headers)

    assert cleared.status_code == 200 and cleared.json()["corridor_m"] is None
    body = assert_error_shape(refused, 422, "validation_error")
    assert "cannot be null: name" in body["details"][0]["msg"]


async def test_patch_checks_the_rules_on_the_resulting_trip(client, headers, trip) -> None:
    # The stored start is 08:00; an arrival before it is refused even though only one time
    # is sent.
    response = await client.patch(
        f"/v1/trips/{trip['id']}", json={"planned_arrival": "2026-12-01T07:00:00Z"}, headers=headers
    )

    body = assert_error_shape(response, 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "planned_arrival"]


async def test_status_moves_follow_the_lifecycle(client, headers, trip) -> None:
    url = f"/v1/trips/{trip['id']}"

    active = (await client.patch(url, json={"status": "active"}, headers=headers)).json()
    completed = (await client.patch(url, json={"status": "completed"}, headers=headers)).json()
    reopened = await client.patch(url, json={"status": "active"}, headers=headers)

    assert active["status"] == "active" and active["started_at"] is not None
    assert completed["status"] == "completed" and completed["ended_at"] is not None
    body = assert_error_shape(reopened, 409, "invalid_status_transition")
    assert body["details"] == {"from": "completed", "to": "active", "allowed": ["completed"]}


async def test_a_device_cannot_drive_two_active_trips(
    client, owner, headers, session_factory
) -> None:
    device = await store_device(session_factory, owner)
    ids = [
        (
            await client.post(
                "/v1/trips", json=trip_body(device_id=str(device.id)), headers=headers
            )
        ).json()["id"]
        for _ in range(2)
    ]
    first = await client.patch(f"/v1/trips/{ids[0]}", json={"status": "active"}, headers=headers)
    second = await client.patch(f"/v1/trips/{ids[1]}", json={"status": "active"}, headers=headers)

    assert first.status_code == 200
    body = assert_error_shape(second, 409, "conflict")
    assert body["details"] == {"constraint": "uq_trips_one_active_per_device"}


# --- DELETE ------------------------------------------------------------------------------------


async def test_delete_answers_204_then_404(client, headers, trip, session_factory) -> None:
    url = f"/v1/trips/{trip['id']}"

    first = await client.delete(url, headers=headers)
    second = await client.delete(url, headers=headers)

    assert first.status_code == 204 and first.content == b""
    assert "content-type" not in first.headers
    # Idempotent in effect (the trip stays gone); the second answer says there is nothing there.
    assert_error_shape(second, 404, "trip_not_found")
    assert_error_shape(await client.get(url, headers=headers), 404)
    async with session_factory() as session:
        assert await session.get(Trip, trip["id"]) is None
        left = await session.scalar(select(func.count()).where(Waypoint.trip_id == trip["id"]))
    assert left == 0


# --- Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"origin_lat": 90.5}, "origin_lat"),
        ({"destination_lon": -180.01}, "destination_lon"),
        ({"origin_lat": "52.5"}, "origin_lat"),  # A string is not a number.
        ({"origin_lon": True}, "origin_lon"),  # Nor is a boolean.
        ({"speed_limit_kmh": 0}, "speed_limit_kmh"),
        ({"speed_limit_kmh": -30}, "speed_limit_kmh"),
        ({"speed_limit_kmh": 1e308}, "speed_limit_kmh"),
        ({"corridor_m": 0}, "corridor_m"),
        ({"corridor_m": 10**30}, "corridor_m"),
        ({"planned_arrival": "2026-12-01T07:00:00Z"}, None),  # Before the start.
        ({"planned_arrival": "2026-12-01T08:00:00Z"}, None),  # Equal to the start.
        ({"planned_start": "2026-12-01T08:00:00"}, "planned_start"),  # No offset.
        ({"planned_start": "0001-01-01T00:00:00+05:00"}, "planned_start"),
        ({"planned_start": 1796112000}, "planned_start"),  # A number is not a time.
        ({"planned_start": "tomorrow"}, "planned_start"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "lone \ud800 surrogate"}, "name"),
        ({"waypoints": [{"lat": 0, "lon": 0, "name": "tab\there"}]}, "waypoints"),
        ({"waypoints": [{"lat": 0, "lon": 0, "name": '=HYPERLINK("http://x")'}]}, "waypoints"),
        ({"waypoints": [{"lat": 0, "lon": 0, "name": " @SUM(A1)"}]}, "waypoints"),
        ({"device_id": "not-a-uuid"}, "device_id"),
        ({"status": "active"}, "status"),  # Unknown on create: a trip starts planned.
        ({"owner_id": "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10"}, "owner_id"),
        ({"waypoints": [{"lat": 0, "lon": 0}] * 51}, "waypoints"),
        ({"waypoints": [{"lat": 95, "lon": 0}]}, "waypoints"),
        ({"waypoints": "none"}, "waypoints"),
    ],
)
async def test_bad_trips_are_refused_with_a_422_naming_the_field(
    client, headers, overrides, field
) -> None:
    # json.dumps escapes non-ASCII, so even a lone surrogate reaches the server as JSON sent it.
    response = await client.post(
        "/v1/trips",
        content=json.dumps(trip_body(**overrides)),
        headers={**headers, "Content-Type": "application/json"},
    )

    body = assert_error_shape(response, 422, "validation_error")
    if field is not None:
        assert any(field in detail["loc"] for detail in body["details"]), body


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{", 422),
        (b"[]", 422),
        (b'"a trip"', 422),
        (b"null", 422),
        (b'{"origin_lat": NaN}', 422),
        (b'{"speed_limit_kmh": Infinity}', 422),
        # Python's JSON parser refuses integers over 4300 digits; FastAPI calls that a 400.
        (b'{"corridor_m": 1' + b"0" * 5000 + b"}", 400),
    ],
)
async def test_malformed_bodies_are_a_4xx_never_a_500(client, headers, content, status) -> None:
    response = await client.post(
        "/v1/trips", content=content, headers={**headers, "Content-Type": "application/json"}
    )

    assert_error_shape(response, status)


async def test_nan_and_infinity_never_reach_the_database(client, headers) -> None:
    text = json.dumps(trip_body()).replace('"speed_limit_kmh": 130', '"speed_limit_kmh": Infinity')
    response = await client.post(
        "/v1/trips", content=text, headers={**headers, "Content-Type": "application/json"}
    )

    body = assert_error_shape(response, 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "speed_limit_kmh"]


@pytest.mark.parametrize("trip_id", ["not-a-uuid", "1", "' OR 1=1 --", "%F0%AD%9D%B5", "stats2"])
async def test_a_path_that_is_not_a_trip_id_is_a_404(client, headers, trip_id) -> None:
    # Trip routes only match UUIDs, so anything else is simply no such resource.
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, f"/v1/trips/{trip_id}", headers=headers)
        assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/trips/stats"), ("DELETE", "/v1/trips/bulk"), ("PATCH", "/v2/trips/stats")],
)
async def test_undeclared_methods_on_trip_paths_are_a_405(client, headers, method, path) -> None:
    response = await client.request(method, path, headers=headers)

    assert_error_shape(response, 405, "method_not_allowed")


@pytest.mark.parametrize(
    "patch",
    [{"unknown": 1}, {"status": "paused"}, {"speed_limit_kmh": "fast"}, {"waypoints": None}],
)
async def test_bad_patches_are_a_422(client, headers, trip, patch) -> None:
    response = await client.patch(f"/v1/trips/{trip['id']}", json=patch, headers=headers)

    assert_error_shape(response, 422, "validation_error")


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_revoked_session_cannot_read_a_trip_on_the_next_request(
    client, trip, headers, version
) -> None:
    url = f"/{version}/trips/{trip['id']}"
    assert (await client.get(url, headers=headers)).status_code == 200
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    body = assert_error_shape(await client.get(url, headers=headers), 401, "session_revoked")
    assert "waypoints" not in body  # Nothing of the trip leaks with the refusal.


async def test_reading_a_trip_is_one_round_trip(client, trip, headers, raw_connection) -> None:
    """Session check, ownership, trip and waypoints: one query on the hot path."""
    with count_raw_queries(raw_connection) as log:
        response = await client.get(f"/v1/trips/{trip['id']}", headers=headers)
        await asyncio.sleep(0.05)  # asyncpg calls query loggers soon after, not inline.
    assert response.status_code == 200
    assert len(log.statements) == 1, log.statements
