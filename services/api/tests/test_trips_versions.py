"""Versioning: `/v1/trips` is deprecated (OpenAPI flag, `Deprecation`, `Sunset` and `Link`
headers), `/v2/trips` makes its one breaking change (positions as objects) on the same service,
and every trips operation is documented."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
from trip_factories import store_trips, trip_body, trip_body_v2

from tripline_api.trips.deprecation import DEPRECATED_AT, SUNSET_AT
from tripline_common.data.models import TripStatus


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


@pytest.fixture
async def spec(client) -> dict:
    return (await client.get("/openapi.json")).json()


def assert_deprecated(response) -> None:
    assert re.fullmatch(r"@\d+", response.headers["Deprecation"])  # RFC 9745: a date.
    assert int(response.headers["Deprecation"][1:]) == int(DEPRECATED_AT.timestamp())
    assert parsedate_to_datetime(response.headers["Sunset"]) == SUNSET_AT  # RFC 8594.
    assert response.headers["Sunset"].endswith(" GMT")
    assert response.links["deprecation"]["url"] == "/redoc#tag/trips-v2"
    v2_path = response.request.url.path.replace("/v1/", "/v2/", 1)
    assert response.links["successor-version"]["url"] == v2_path


async def test_every_kind_of_v1_trips_response_announces_the_deprecation(client, headers) -> None:
    created = await client.post("/v1/trips", json=trip_body(), headers=headers)
    url = f"/v1/trips/{created.json()['id']}"
    responses = [
        created,
        await client.get("/v1/trips", headers=headers),
        await client.get(url, headers=headers),
        await client.get("/v1/trips/stats", headers=headers),
        await client.patch(url, json={"name": "renamed"}, headers=headers),
        await client.post("/v1/trips/bulk", json={"items": [trip_body()]}, headers=headers),
        await client.delete(url, headers=headers),
    ]

    for response in responses:
        assert response.status_code < 300, response.text
        assert_deprecated(response)


async def test_a_v1_list_keeps_its_page_links_beside_the_deprecation_links(
    client, headers, owner, session_factory
) -> None:
    await store_trips(session_factory, owner, 3)

    response = await client.get("/v1/trips", params={"limit": 1}, headers=headers)

    assert {"next", "deprecation", "successor-version"} <= set(response.links)


async def test_v2_responses_carry_no_deprecation_headers(client, headers) -> None:
    created = await client.post("/v2/trips", json=trip_body_v2(), headers=headers)
    listed = await client.get("/v2/trips", headers=headers)

    for response in (created, listed):
        assert response.status_code < 300
        assert "Deprecation" not in response.headers and "Sunset" not in response.headers
        assert "deprecation" not in response.links


async def test_openapi_marks_every_v1_trips_operation_deprecated_and_no_v2_one(spec) -> None:
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/trips"):
                assert operation.get("deprecated") is True, path
                assert "/v2/trips" in operation["description"], path
            if path.startswith("/v2/"):
                assert not operation.get("deprecated"), path


async def test_openapi_states_the_breaking_change_and_why(spec) -> None:
    [tag] = [tag for tag in spec["tags"] if tag["name"] == "trips-v2"]

    assert "`{lat, lon}` object" in tag["description"]
    assert "Why:" in tag["description"]


# --- The breaking change -----------------------------------------------------------------------


async def test_v2_shows_positions_as_objects(client, headers) -> None:
    created = await client.post("/v2/trips", json=trip_body_v2(), headers=headers)

    trip = created.json()
    assert created.status_code == 201
    assert created.headers["Location"].endswith(f"/v2/trips/{trip['id']}")
    assert trip["origin"] == {"lat": 52.52, "lon": 13.405}
    assert trip["destination"] == {"lat": 53.551, "lon": 9.993}
    assert trip["last_position"] is None
    assert not any(key.endswith(("_lat", "_lon")) for key in trip)


async def test_v1_and_v2_are_two_views_of_the_same_trip(
    client, headers, owner, session_factory
) -> None:
    [stored] = await store_trips(
        session_factory, owner, 1, status=TripStatus.ACTIVE, last_lat=52.9, last_lon=12.1
    )

    v1 = (await client.get(f"/v1/trips/{stored.id}", headers=headers)).json()
    v2 = (await client.get(f"/v2/trips/{stored.id}", headers=headers)).json()

    assert v2["origin"] == {"lat": v1["origin_lat"], "lon": v1["origin_lon"]}
    assert v2["last_position"] == {"lat": 52.9, "lon": 12.1}
    shared = set(v1) & set(v2)
    assert {k: v1[k] for k in shared} == {k: v2[k] for k in shared}
    assert len(shared) == 16


@pytest.mark.parametrize(
    "body",
    [
        trip_body(),  # The v1 shape.
        trip_body_v2(origin={"lat": 52.5}),
        trip_body_v2(origin={"lat": 52.5, "lon": 13.4, "alt": 30}),
        trip_body_v2(origin=[52.5, 13.4]),
        trip_body_v2(destination={"lat": -91, "lon": 0}),
    ],
)
async def test_v2_refuses_anything_but_whole_position_objects(client, headers, body) -> None:
    response = await client.post("/v2/trips", json=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_v2_patch_replaces_a_position_whole(client, headers) -> None:
    trip = (await client.post("/v2/trips", json=trip_body_v2(), headers=headers)).json()
    url = f"/v2/trips/{trip['id']}"

    moved = await client.patch(url, json={"origin": {"lat": 50.0, "lon": 8.0}}, headers=headers)
    half = await client.patch(url, json={"origin": {"lat": 51.0}}, headers=headers)
    v1_field = await client.patch(url, json={"origin_lat": 51.0}, headers=headers)

    assert moved.status_code == 200 and moved.json()["origin"] == {"lat": 50.0, "lon": 8.0}
    assert half.status_code == 422 and v1_field.status_code == 422


async def test_v2_put_list_and_delete_share_v1_behaviour(client, headers) -> None:
    trip = (await client.post("/v2/trips", json=trip_body_v2(), headers=headers)).json()
    url = f"/v2/trips/{trip['id']}"

    replaced = await client.put(url, json=trip_body_v2(status="active"), headers=headers)
    page = await client.get("/v2/trips", params={"fields": "origin,status"}, headers=headers)
    bad_field = await client.get("/v2/trips", params={"fields": "origin_lat"}, headers=headers)
    deleted = await client.delete(url, headers=headers)
    again = await client.delete(url, headers=headers)

    assert replaced.json()["status"] == "active"
    assert page.json()["items"] == [
        {"id": trip["id"], "origin": trip["origin"], "status": "active"}
    ]
    assert bad_field.status_code == 400 and bad_field.json()["code"] == "invalid_fields"
    assert (deleted.status_code, again.status_code) == (204, 404)


# --- Documentation -----------------------------------------------------------------------------


def trips_operations(spec: dict):
    for path, operations in spec["paths"].items():
        if path.startswith(("/v1/trips", "/v2/trips")):
            for method, operation in operations.items():
                yield path, method, operation


async def test_every_trips_operation_is_documented(spec) -> None:
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method, operation in trips_operations(spec):
        where = f"{method.upper()} {path}"
        assert operation["summary"] and operation["description"], where
        assert operation["tags"] in (["trips"], ["trips-v2"]), where
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, where
        if success != ["204"]:
            content = responses[success[0]]["content"]
            media = "text/csv" if path.endswith(".csv") else "application/json"
            assert content[media]["schema"], where
        errors = {"401", "422", "500"} | ({"404"} if "{trip_id}" in path else set())
        for code in errors:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema["$ref"] == error_ref, (where, code)


async def test_every_field_of_the_trips_schemas_is_described(spec) -> None:
    schemas = spec["components"]["schemas"]
    names = [
        name
        for name in schemas
        if name.startswith(("Trip", "Waypoint", "Coordinates", "BulkItemResult"))
    ]
    assert len(names) >= 20
    for name in names:
        schema = schemas[name]
        if "properties" not in schema:
            continue  # An enumeration such as TripStatus.
        assert schema.get("description"), name
        for field, definition in schema["properties"].items():
            assert definition.get("description"), f"{name}.{field}"


async def test_request_schemas_carry_examples(spec) -> None:
    schemas = spec["components"]["schemas"]
    for name in ("TripCreate", "TripReplace", "TripUpdate", "TripCreateV2", "TripPublic"):
        assert schemas[name]["examples"], name


async def test_sort_and_fields_allowlists_are_documented(spec) -> None:
    parameters = {p["name"]: p for p in spec["paths"]["/v1/trips"]["get"]["parameters"]}

    assert parameters["sort"]["schema"]["enum"] == [
        "created_at",
        "planned_start",
        "name",
        "-created_at",
        "-planned_start",
        "-name",
    ]
    assert "waypoints" in parameters["fields"]["description"]
    list_item = spec["components"]["schemas"]["TripListItem"]
    assert list_item["required"] == ["id"]  # `?fields=` may leave any other field out.
