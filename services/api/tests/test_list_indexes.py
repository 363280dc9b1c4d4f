"""Every allowlisted sort of the trip and alert lists, and each of their filters, is a page read:
an index gives the rows in the page's order (a cursor's position is an index condition, so a
deep page costs what the first does), and a filter's rows are found in an index, not by
reading the owner's history. The trip stats read an index alone.

The sorts come from the code's own `SortSpec`s and the filters from the filter models, so a new
sort or filter without an index fails here (docs/performance.md, "Which index serves which
list"). How a plan is judged: `tests/support/query_plans.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from trip_factories import START, store_alerts, store_device, store_trips

from tests.support.query_plans import assert_page_read, captured, plan
from tripline_api.alerts.schemas import AlertFilters
from tripline_api.alerts.service import ALERT_SORT
from tripline_api.trips.schemas import TripFilters
from tripline_api.trips.service import TRIP_SORT
from tripline_common.data.models import AlertStatus, TripStatus
from tripline_common.web import SortSpec

LISTS: dict[str, tuple[str, SortSpec]] = {"/v1/trips": ("trips", TRIP_SORT)}
LISTS["/v1/alerts"] = ("alerts", ALERT_SORT)

# Each filter with the sorts its index keeps in order: (list, query, sort, indexed columns).
# A filter reached only through another list's sort is sorted after the lookup (the status
# filter of alerts sorted by rule, say): those pairs are left out on purpose, see
# docs/performance.md.
FILTERED: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    ("/v1/trips", {"status": "active"}, "-created_at", ("status",)),
    ("/v1/trips", {"status": "active"}, "planned_start", ("status",)),
    ("/v1/trips", {"status": "active"}, "name", ("status",)),
    ("/v1/trips", {"device_id": "{device}"}, "-created_at", ("device_id",)),
    (
        "/v1/trips",
        {"planned_start_from": "2026-12-01T00:00:00Z", "planned_start_to": "2027-01-01T00:00:00Z"},
        "planned_start",
        ("planned_start",),
    ),
    (
        "/v1/trips",
        {"status": "active", "planned_start_from": "2026-12-01T00:00:00Z"},
        "planned_start",
        ("status", "planned_start"),
    ),
    ("/v1/alerts", {"status": "open"}, "-raised_at", ("status",)),
    ("/v1/alerts", {"status": "open"}, "status", ("status",)),
    ("/v1/alerts", {"rule": "speeding"}, "-raised_at", ("rule",)),
    ("/v1/alerts", {"rule": "speeding"}, "rule", ("rule",)),
    ("/v1/alerts", {"trip_id": "{trip}"}, "-raised_at", ("trip_id",)),
    (
        "/v1/alerts",
        {"raised_from": "2026-12-01T00:00:00Z", "raised_to": "2027-01-01T00:00:00Z"},
        "-raised_at",
        ("raised_at",),
    ),
]


@pytest.fixture
async def rows(owner, session_factory) -> dict[str, str]:
    """Three rows matching each filter above, so that every list has a second page at limit 2."""
    device = await store_device(session_factory, owner)
    # One active trip per device at most: the active ones have none.
    await store_trips(session_factory, owner, 3, status=TripStatus.ACTIVE, device_id=None)
    await store_trips(session_factory, owner, 3, device_id=device.id)
    alerts = await store_alerts(session_factory, owner, 3, status=AlertStatus.OPEN)
    return {"device": str(device.id), "trip": str(alerts[0].trip_id)}


async def pages(client, headers, db_connection, path: str, table: str, **params: Any):
    """The statements of the first page and of the page its `next_cursor` leads to."""
    statements = []
    cursor = None
    for _ in range(2):
        query = {**params, "limit": 2} | ({"cursor": cursor} if cursor else {})
        with captured(db_connection) as log:
            response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        statements.append(log.page_query(table))
        cursor = response.json()["next_cursor"]
        assert cursor or statements[1:], "the first page must lead to a second"
    return statements


@pytest.mark.parametrize(
    ("path", "sort"),
    [(path, sort) for path, (_, spec) in LISTS.items() for sort in spec.choices],
)
async def test_each_allowlisted_sort_reads_its_pages_from_an_index_cursor_included(
    client, headers, db_connection, rows, path, sort
) -> None:
    table, _spec = LISTS[path]
    first, deeper = await pages(client, headers, db_connection, path, table, sort=sort)

    assert_page_read(await plan(db_connection, first), table)
    column = sort.removeprefix("-")
    assert_page_read(await plan(db_connection, deeper), table, index_cond=[column])


@pytest.mark.parametrize(("path", "query", "sort", "columns"), FILTERED)
async def test_each_filter_finds_its_rows_in_an_index_in_the_order_of_its_sort(
    client, headers, db_connection, rows, owner, session_factory, path, query, sort, columns
) -> None:
    table, _spec = LISTS[path]
    params = {name: value.format(**rows) for name, value in query.items()}
    if path == "/v1/trips" and "status" in query:
        # A history of trips the status excludes, and statistics that know it (as a real
        # database has): otherwise, on a handful of rows, the planner may as well take the
        # index without the status and filter, and the test would depend on leftover stats.
        await store_trips(session_factory, owner, 200)
        await db_connection.exec_driver_sql("ANALYZE trips")
    first, deeper = await pages(client, headers, db_connection, path, table, sort=sort, **params)

    for statement in (first, deeper):
        nodes = await plan(db_connection, statement)
        assert_page_read(nodes, table, index_cond=columns)


def test_every_filter_of_the_trip_and_alert_lists_is_proven_indexed_above() -> None:
    proven = {(path, name) for path, query, _, _ in FILTERED for name in query}
    declared = {("/v1/trips", name) for name in TripFilters.model_fields} | {
        ("/v1/alerts", name) for name in AlertFilters.model_fields
    }
    assert declared <= proven, declared - proven


async def test_trip_stats_read_the_kept_counts_and_one_index_entry_per_live_figure(
    client, headers, db_connection, owner, session_factory
) -> None:
    later = START + timedelta(days=400)
    await store_trips(
        session_factory, owner, 2, planned_start=later, planned_arrival=later + timedelta(hours=3)
    )
    # A history and a plan that outweigh everything else, and statistics that say so: the
    # planner then weighs the plans as it would for a fleet with years of trips.
    for status, days, distance in (("completed", -1, 1000.0), ("planned", 1, 0.0)):
        await db_connection.execute(
            text(
                "INSERT INTO trips (owner_id, name, status, origin_lat, origin_lon,"
                " destination_lat, destination_lon, planned_start, planned_arrival, distance_m)"
                " SELECT :owner, 'Trip', CAST(:status AS varchar), 52.5, 13.4, 53.5, 10.0,"
                " now() + interval '1 day' * i * :days,"
                " now() + interval '1 day' * i * :days + interval '3 hours',"
                " :distance"
                " FROM generate_series(1, 2000) AS i"
            ),
            {"owner": owner.id, "status": status, "days": days, "distance": distance},
        )
    await db_connection.execute(text("ANALYZE trips"))

    with captured(db_connection) as log:
        response = await client.get("/v1/trips/stats", headers=headers)
    assert response.status_code == 200, response.text
    [statement] = [(sql, p) for sql, p in log.statements if "FROM trips" in sql]

    nodes = await plan(db_connection, statement)
    counts = response.json()["by_status"]
    assert (counts["completed"], counts["planned"]) == (2000, 2002)
    tables = {node.table for node in nodes}
    assert {"trip_live_counts", "trip_history_totals"} <= tables  # The counts, kept.
    types = [node.type for node in nodes]
    assert "Sort" not in types and "Seq Scan" not in types, types
    trip_reads = [node for node in nodes if node.table == "trips"]
    # The active trips' distance, and the next planned start: the first entry after now.
    assert trip_reads and all(
        "planned" in n.index_cond or "active" in n.index_cond for n in trip_reads
    )
    assert "Limit" in types
