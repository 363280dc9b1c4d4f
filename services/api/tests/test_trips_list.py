"""The trip list: limit/offset and cursor pagination with their edges, filters, the sort
allowlist, `?fields=` selection, `Link` headers, the opt-in total, and no N+1 queries."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from trip_factories import START, count_queries, count_raw_queries, store_device, store_trips

from tripline_common.web.pagination import Cursor, CursorCodec


async def list_trips(client, headers, **params):
    response = await client.get("/v1/trips", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def names(response) -> list[str]:
    return [item["name"] for item in response.json()["items"]]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def assert_400(response, code: str) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code and body["request_id"]
    return body


# --- limit and offset --------------------------------------------------------------------------


async def test_limit_and_offset_page_through_the_list(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 25)

    first = await list_trips(client, headers, limit=10, offset=0, sort="name")
    last = await list_trips(client, headers, limit=10, offset=20, sort="name")

    assert names(first) == [f"Trip {i:02}" for i in range(10)]
    assert first.json()["offset"] == 0 and first.json()["limit"] == 10
    assert set(first.links) == {"next", "deprecation", "successor-version"}
    assert query_of(first.links["next"]["url"])["offset"] == ["10"]
    assert names(last) == [f"Trip {i:02}" for i in range(20, 25)]
    assert "next" not in last.links
    assert query_of(last.links["prev"]["url"])["offset"] == ["10"]


async def test_the_default_page_is_20_newest_first_linking_by_cursor(
    client, headers, owner, session_factory
):
    await store_trips(session_factory, owner, 25)

    response = await list_trips(client, headers)

    page = response.json()
    assert len(page["items"]) == 20
    assert page["items"][0]["name"] == "Trip 24"  # Default sort: -created_at.
    # Without `offset`, the links use the cursor (stable while trips change).
    assert query_of(response.links["next"]["url"])["cursor"] == [page["next_cursor"]]
    assert "prev" not in response.links


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": 10**30},
        {"offset": -1},
        {"offset": 10_001},
        {"offset": 1.5},
    ],
)
async def test_limit_and_offset_out_of_bounds_are_a_422(client, headers, params) -> None:
    response = await client.get("/v1/trips", params=params, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_largest_page_is_allowed(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 3)

    assert len(names(await list_trips(client, headers, limit=100))) == 3


async def test_an_offset_past_the_end_is_an_empty_page_that_links_back(
    client, headers, owner, session_factory
):
    await store_trips(session_factory, owner, 5)

    page = await list_trips(client, headers, limit=10, offset=50)

    assert page.json()["items"] == []
    assert page.json()["next_cursor"] is None and page.json()["prev_cursor"] is None
    assert "next" not in page.links
    assert query_of(page.links["prev"]["url"])["offset"] == ["40"]


async def test_an_empty_list_has_no_page_links(client, headers) -> None:
    page = await list_trips(client, headers)

    assert page.json()["items"] == []
    assert "next" not in page.links and "prev" not in page.links


# --- cursors -----------------------------------------------------------------------------------


async def walk(client, headers, direction: str, key: str = "name", **params) -> list[list[str]]:
    """Follow the `Link` rel `direction` from the page `params` ask for; `key` of each item,
    page by page."""
    pages = []
    response = await list_trips(client, headers, **params)
    while True:
        pages.append([item[key] for item in response.json()["items"]])
        if direction not in response.links:
            return pages
        response = await client.get(response.links[direction]["url"], headers=headers)
        assert response.status_code == 200, response.text


async def test_cursors_walk_the_whole_list_forwards_and_back(
    client, headers, owner, session_factory
):
    await store_trips(session_factory, owner, 25)

    forwards = await walk(client, headers, "next", limit=10, sort="-planned_start")
    assert forwards == [
        [f"Trip {i:02}" for i in range(24, 14, -1)],
        [f"Trip {i:02}" for i in range(14, 4, -1)],
        [f"Trip {i:02}" for i in range(4, -1, -1)],
    ]

    # Start on the last page through its cursor and walk back to the first one.
    page = await list_trips(client, headers, limit=10, sort="-planned_start")
    page = await client.get(page.links["next"]["url"], headers=headers)
    page = await client.get(page.links["next"]["url"], headers=headers)
    backwards = await walk(client, headers, "prev", **query_params(page.request.url))
    assert backwards == forwards[::-1]


def query_params(url) -> dict[str, str]:
    return {key: value for key, value in url.params.multi_items()}


async def test_the_cursor_is_in_the_body_too(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 3)

    first = (await list_trips(client, headers, limit=2, sort="name")).json()
    second = (
        await list_trips(client, headers, limit=2, sort="name", cursor=first["next_cursor"])
    ).json()

    assert [i["name"] for i in second["items"]] == ["Trip 02"]
    assert second["offset"] is None and second["next_cursor"] is None
    assert second["prev_cursor"] is not None


async def test_cursor_paging_breaks_ties_by_id_without_skipping_or_repeating(
    client, headers, owner, session_factory
):
    trips = await store_trips(session_factory, owner, 7, planned_start=START)

    pages = await walk(client, headers, "next", "id", limit=3, sort="planned_start", fields="id")

    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [trip_id for page in pages for trip_id in page]
    assert walked == sorted(str(trip.id) for trip in trips)


async def test_a_cursor_is_stable_when_trips_are_added(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 6)
    first = await list_trips(client, headers, limit=3, sort="-created_at")
    # A newer trip arrives: with offsets, page 2 would repeat "Trip 03"; the cursor does not.
    await store_trips(session_factory, owner, 1, name="Newest", created_at=START)

    second = await client.get(first.links["next"]["url"], headers=headers)

    assert names(first) == ["Trip 05", "Trip 04", "Trip 03"]
    assert names(second) == ["Trip 02", "Trip 01", "Trip 00"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cursor: cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        lambda cursor: "x" + cursor,
        lambda cursor: cursor.split(".")[0],
        lambda cursor: "not-a-cursor",
        lambda cursor: "....",
        lambda cursor: "%%%",
    ],
)
async def test_a_tampered_cursor_is_a_400(client, headers, owner, session_factory, tamper):
    await store_trips(session_factory, owner, 3)
    cursor = (await list_trips(client, headers, limit=1)).json()["next_cursor"]

    response = await client.get("/v1/trips", params={"cursor": tamper(cursor)}, headers=headers)

    body = assert_400(response, "invalid_cursor")
    assert body["message"] == "The cursor is not valid; start again from the first page."


async def test_a_cursor_signed_with_another_secret_is_a_400(client, headers) -> None:
    foreign = CursorCodec("someone else's secret key, 32+ chars").encode(
        Cursor(sort="-created_at", key=START, id=START.isoformat(), direction="next")
    )

    response = await client.get("/v1/trips", params={"cursor": foreign}, headers=headers)

    assert_400(response, "invalid_cursor")


async def test_a_cursor_is_bound_to_its_sort(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 3)
    cursor = (await list_trips(client, headers, limit=1, sort="name")).json()["next_cursor"]

    response = await client.get(
        "/v1/trips", params={"cursor": cursor, "sort": "-created_at"}, headers=headers
    )

    assert_400(response, "cursor_sort_mismatch")


async def test_offset_and_cursor_together_are_a_400(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 3)
    cursor = (await list_trips(client, headers, limit=1)).json()["next_cursor"]

    response = await client.get(
        "/v1/trips", params={"cursor": cursor, "offset": 1}, headers=headers
    )

    assert_400(response, "conflicting_pagination")


async def test_an_oversized_cursor_is_a_422(client, headers) -> None:
    response = await client.get("/v1/trips", params={"cursor": "a" * 5000}, headers=headers)

    assert response.status_code == 422


# --- sorting -----------------------------------------------------------------------------------


async def test_each_allowed_sort_orders_the_list(client, headers, owner, session_factory):
    # Names, start times and creation times in three different orders.
    for name, start_hours, created_seconds in [("b", 2, 0), ("c", 0, 1), ("a", 1, 2)]:
        await store_trips(
            session_factory,
            owner,
            1,
            name=name,
            planned_start=START + timedelta(hours=start_hours),
            planned_arrival=START + timedelta(hours=start_hours + 5),
            created_at=START + timedelta(seconds=created_seconds),
        )

    expected = {
        "name": ["a", "b", "c"],
        "-name": ["c", "b", "a"],
        "planned_start": ["c", "a", "b"],
        "-planned_start": ["b", "a", "c"],
        "created_at": ["b", "c", "a"],
        "-created_at": ["a", "c", "b"],
    }
    for sort, order in expected.items():
        assert names(await list_trips(client, headers, sort=sort)) == order, sort


@pytest.mark.parametrize(
    "sort",
    ["owner_id", "-distance_m", "id", "-", "", "name,created_at", "name; DROP TABLE trips", "Name"],
)
async def test_sorting_outside_the_allowlist_is_a_400_naming_the_allowed_fields(
    client, headers, sort
) -> None:
    response = await client.get("/v1/trips", params={"sort": sort}, headers=headers)

    body = assert_400(response, "invalid_sort")
    assert body["details"] == {"allowed": ["created_at", "planned_start", "name"]}
    assert "created_at, planned_start, name" in body["message"]


# --- filters -----------------------------------------------------------------------------------


async def test_filters_by_status(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 2, status="planned", name="planned")
    await store_trips(session_factory, owner, 1, status="completed", name="completed")
    await store_trips(session_factory, owner, 1, status="cancelled", name="cancelled")

    only_planned = await list_trips(client, headers, status="planned")
    response = await client.get(
        "/v1/trips?status=completed&status=cancelled&sort=name", headers=headers
    )

    assert names(only_planned) == ["planned", "planned"]
    assert names(response) == ["cancelled", "completed"]


async def test_filters_by_device(client, headers, owner, session_factory):
    device = await store_device(session_factory, owner)
    await store_trips(session_factory, owner, 1, device_id=device.id, name="with device")
    await store_trips(session_factory, owner, 2, name="without")

    response = await list_trips(client, headers, device_id=str(device.id))

    assert names(response) == ["with device"]


async def test_filters_by_planned_start_from_inclusive_to_exclusive(
    client, headers, owner, session_factory
):
    await store_trips(session_factory, owner, 6)  # Starts at START + 0h ... 5h.

    response = await list_trips(
        client,
        headers,
        sort="planned_start",
        planned_start_from=(START + timedelta(hours=1)).isoformat(),
        planned_start_to=(START + timedelta(hours=4)).isoformat(),
    )

    assert names(response) == ["Trip 01", "Trip 02", "Trip 03"]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "paused"},
        {"device_id": "123"},
        {"planned_start_from": "2026-12-01T08:00:00"},  # No offset.
        {"planned_start_from": "yesterday"},
        {"planned_start_from": "1796112000"},  # Seconds since 1970 are not a time, even as text.
        {"planned_start_to": "0.5"},
        {"planned_start_from": "0001-01-01T00:00:00+05:00"},
        {"planned_start_from": "2026-12-02T00:00:00Z", "planned_start_to": "2026-12-01T00:00:00Z"},
        {"planned_start_from": "2026-12-01T00:00:00Z", "planned_start_to": "2026-12-01T00:00:00Z"},
        {"status": ["planned"] * 5},
    ],
)
async def test_bad_filters_are_a_422(client, headers, params) -> None:
    response = await client.get("/v1/trips", params=params, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_page_links_keep_the_filters_sort_and_fields(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 5)

    page = await list_trips(
        client, headers, limit=2, status="planned", sort="name", fields="id,name"
    )
    following = await client.get(page.links["next"]["url"], headers=headers)

    query = query_of(page.links["next"]["url"])
    assert query["status"] == ["planned"] and query["sort"] == ["name"]
    assert query["fields"] == ["id,name"] and query["limit"] == ["2"] and "cursor" in query
    assert names(following) == ["Trip 02", "Trip 03"]
    assert set(following.json()["items"][0]) == {"id", "name"}


# --- fields ------------------------------------------------------------------------------------


async def test_fields_narrows_each_item(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 2)

    selected = await list_trips(client, headers, fields="id,name,status")
    only_name = await list_trips(client, headers, fields=" name ,name")
    everything = await list_trips(client, headers)

    assert all(set(item) == {"id", "name", "status"} for item in selected.json()["items"])
    assert all(set(item) == {"id", "name"} for item in only_name.json()["items"])  # id always.
    assert "waypoints" in everything.json()["items"][0]
    assert len(everything.json()["items"][0]) == 22


@pytest.mark.parametrize("fields", ["id,owner_id", "password_hash", "name,,bogus", "*"])
async def test_unknown_fields_are_a_400(client, headers, fields) -> None:
    response = await client.get("/v1/trips", params={"fields": fields}, headers=headers)

    body = assert_400(response, "invalid_fields")
    assert "name" in body["details"]["allowed"]


# --- total -------------------------------------------------------------------------------------


async def test_total_is_counted_only_when_asked(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 7)
    await store_trips(session_factory, owner, 2, status="cancelled")

    without = (await list_trips(client, headers, limit=2)).json()
    counted = (await list_trips(client, headers, limit=2, include_total=True)).json()
    filtered = (
        await list_trips(client, headers, limit=2, include_total=True, status="cancelled")
    ).json()

    assert without["total"] is None
    assert counted["total"] == 9
    assert filtered["total"] == 2


# --- N+1 ---------------------------------------------------------------------------------------


async def test_listing_trips_with_waypoints_costs_the_same_queries_for_5_or_20(
    client, headers, owner, session_factory, db_connection
):
    await store_trips(session_factory, owner, 5, waypoints=3)
    with count_queries(db_connection) as five:
        small = await list_trips(client, headers, limit=5)
    await store_trips(session_factory, owner, 15, waypoints=3)
    with count_queries(db_connection) as twenty:
        large = await list_trips(client, headers, limit=20)

    assert len(small.json()["items"]) == 5 and len(large.json()["items"]) == 20
    assert all(len(item["waypoints"]) == 3 for item in large.json()["items"])
    assert len(twenty.statements) == len(five.statements)
    # One SELECT of the trips and one of all their waypoints, whatever the page size.
    assert len(twenty.touching("waypoints")) == 1
    assert len([sql for sql in twenty.touching("trips") if "waypoints" not in sql]) == 1


async def test_getting_one_trip_with_its_waypoints_is_one_query(
    client, headers, owner, session_factory, db_connection, raw_connection
):
    [trip] = await store_trips(session_factory, owner, 1, waypoints=5)

    with count_queries(db_connection) as orm, count_raw_queries(raw_connection) as raw:
        response = await client.get(f"/v1/trips/{trip.id}", headers=headers)
        await asyncio.sleep(0.01)  # asyncpg calls query loggers soon after, not during, a query.

    assert [w["seq"] for w in response.json()["waypoints"]] == [0, 1, 2, 3, 4]
    # One statement reads the trip and its waypoints (on the raw pool); no ORM session at all.
    assert len(raw.touching("trips")) == 1
    assert orm.statements == []
