"""Every allowlisted sort of the admin's lists (users, devices, jobs, audit log) reads its pages
from an index, cursor included, and each filter is either found in an index or walks the
sort's index (values common enough that a page fills quickly); the `q=` searches use the
trigram indexes wherever the server has pg_trgm.

Sorts come from the code's `SortSpec`s and filters from the filter models, so a new one without
a row here fails (docs/performance.md, "Which index serves which list"). How a plan is judged:
`tests/support/query_plans.py`.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.query_plans import assert_found_by_index, assert_page_read, captured, plan
from tripline_admin.audit.schemas import AuditFilters
from tripline_admin.audit.service import AUDIT_SORT
from tripline_admin.devices.schemas import DeviceFilters
from tripline_admin.devices.service import DEVICE_SORT
from tripline_admin.jobs.schemas import JobFilters
from tripline_admin.jobs.service import JOB_SORT
from tripline_admin.users.schemas import UserFilters
from tripline_admin.users.service import USER_SORT
from tripline_common.data.models import AuditLogEntry, Job, JobStatus
from tripline_common.web import SortSpec

LISTS: dict[str, tuple[str, SortSpec, type[Any]]] = {
    "/v1/users": ("users", USER_SORT, UserFilters),
    "/v1/devices": ("devices", DEVICE_SORT, DeviceFilters),
    "/v1/jobs": ("jobs", JOB_SORT, JobFilters),
    "/v1/audit-log": ("audit_log", AUDIT_SORT, AuditFilters),
}

# How each filter is served, with the default sort:
# - "ordered": an index on (filter, sort key) walks the filter's rows in the page's order;
# - "lookup": an index finds the filter's few rows, which are then sorted;
# - "trigram": a lookup where the server has pg_trgm, a read of the table in the sort's
#   order elsewhere;
# - "walk": a value common enough that walking the sort's index fills a page quickly.
FILTERS: list[tuple[str, dict[str, str], str, tuple[str, ...]]] = [
    ("/v1/users", {"q": "needle"}, "trigram", ("email", "display_name")),
    ("/v1/users", {"role": "user"}, "walk", ()),
    ("/v1/users", {"active": "true"}, "walk", ()),
    ("/v1/devices", {"q": "needle"}, "trigram", ("name", "api_key_prefix", "email")),
    ("/v1/devices", {"owner_id": "{owner}"}, "lookup", ("owner_id",)),
    ("/v1/devices", {"state": "active"}, "walk", ()),
    ("/v1/jobs", {"status": "failed"}, "ordered", ("status",)),
    ("/v1/jobs", {"kind": "export_trips"}, "walk", ()),
    ("/v1/audit-log", {"action": "user.disable"}, "ordered", ("action",)),
    ("/v1/audit-log", {"action": "user."}, "walk", ()),
    ("/v1/audit-log", {"actor": "needle"}, "trigram", ("actor_label",)),
    ("/v1/audit-log", {"actor": "{owner}"}, "lookup", ("actor_id",)),
    ("/v1/audit-log", {"target_type": "user", "target_id": "{owner}"}, "lookup", ("target_id",)),
    ("/v1/audit-log", {"request_id": "req-needle"}, "lookup", ("request_id",)),
    (
        "/v1/audit-log",
        {"since": "2026-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"},
        "ordered",
        ("created_at",),
    ),
]


@pytest.fixture
async def rows(operator, make_user, make_device, session_factory) -> dict[str, str]:
    """Three rows of each table matching every filter above: each list has a second page."""
    for i in range(3):
        owner = await make_user(email=f"needle{i}@example.com", name=f"Needle {i}")
    for i in range(3):
        await make_device(owner, name=f"needle van {i}")
    async with session_factory() as session:
        for i in range(3):
            job_id = uuid.uuid4()
            session.add(
                Job(
                    id=job_id,
                    kind="export_trips",
                    status=JobStatus.FAILED,
                    arq_job_id=f"export_trips:{job_id}",
                )
            )
            session.add(
                AuditLogEntry(
                    actor_id=owner.id,
                    actor_label=f"needle{i}@example.com",
                    action="user.disable",
                    target_type="user",
                    target_id=str(owner.id),
                    request_id="req-needle",
                )
            )
        await session.commit()
    return {"owner": str(owner.id)}


async def pages(client, headers, db_connection, path: str, **params: Any):
    """The statements of the first page and of the page its `next_cursor` leads to."""
    table = LISTS[path][0]
    statements = []
    cursor = None
    for _ in range(2):
        query = {**params, "limit": 2} | ({"cursor": cursor} if cursor else {})
        with captured(db_connection) as log:
            response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["items"], "every filter matches the rows made above"
        statements.append(log.page_query(table))
        cursor = response.json()["next_cursor"]
        assert cursor or statements[1:], "the first page must lead to a second"
    return statements


async def has_trigram_indexes(db_connection) -> bool:
    found = await db_connection.scalar(
        text("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'")
    )
    return bool(found)


@pytest.mark.parametrize(
    ("path", "sort"),
    [(path, sort) for path, (_, spec, _) in LISTS.items() for sort in spec.choices],
)
async def test_each_allowlisted_admin_sort_reads_its_pages_from_an_index_cursor_included(
    client, operator_headers, db_connection, rows, path, sort
) -> None:
    table = LISTS[path][0]
    first, deeper = await pages(client, operator_headers, db_connection, path, sort=sort)

    assert_page_read(await plan(db_connection, first), table)
    column = sort.removeprefix("-")
    assert_page_read(await plan(db_connection, deeper), table, index_cond=[column])


@pytest.mark.parametrize(("path", "query", "served", "columns"), FILTERS)
async def test_each_admin_filter_is_found_in_an_index_or_walks_the_sorts_index(
    client, operator_headers, db_connection, rows, path, query, served, columns
) -> None:
    table = LISTS[path][0]
    params = {name: value.format(**rows) for name, value in query.items()}
    statements = await pages(client, operator_headers, db_connection, path, **params)
    first, deeper = statements
    if served == "trigram" and not await has_trigram_indexes(db_connection):
        # No pg_trgm on this server: the matches are found by reading the table, but the page
        # still comes in the sort's index order, never from a sort of everything.
        for statement in statements:
            types = [node.type for node in await plan(db_connection, statement)]
            assert "Sort" not in types, types
    elif served in ("lookup", "trigram"):
        nodes = await plan(db_connection, first, mode="lookup")
        assert_found_by_index(nodes, table, columns)
        # Deeper, the cursor's bound is a second index condition the planner may prefer.
        assert_found_by_index(await plan(db_connection, deeper, mode="lookup"), table, ())
    else:
        for statement in statements:
            assert_page_read(await plan(db_connection, statement), table, index_cond=columns)


def test_every_admin_filter_is_proven_served_above() -> None:
    proven = {(path, name) for path, query, _, _ in FILTERS for name in query}
    declared = {
        (path, name) for path, (_, _, filters) in LISTS.items() for name in filters.model_fields
    }
    assert declared <= proven, declared - proven
